//go:build linux

package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// ListenUnix listens on a unix socket that only its owner (root) may
// connect to. The socket is bound under a temporary name, restricted, and
// renamed into place, so it is never reachable with a wider mode.
func ListenUnix(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("API socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("API socket path %s exists and is not a socket (%s); remove it or choose another socket in the serve config", path, fi.Mode().Type())
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another server already listens on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove the stale socket %s: %w", path, err)
		}
	}
	tmp := path + ".tmp-" + strconv.Itoa(os.Getpid())
	os.Remove(tmp)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("restrict %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return l, nil
}

// tlsConfig builds the TCP listener's TLS configuration.
func (c *Config) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.TCP.Cert, c.TCP.Key)
	if err != nil {
		return nil, fmt.Errorf("serve config %s: tcp.cert/tcp.key: %w", c.Source, err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.TCP.ClientCA != "" {
		pem, err := os.ReadFile(c.TCP.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("serve config %s: tcp.client_ca: %w", c.Source, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("serve config %s: tcp.client_ca %s holds no PEM certificate", c.Source, c.TCP.ClientCA)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// Serve serves the API on the configured socket (and TLS address) until
// ctx ends, then shuts down, letting requests in flight finish for a few
// seconds.
func (s *Server) Serve(ctx context.Context) error {
	ul, err := ListenUnix(s.cfg.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(s.cfg.Socket)
	listeners := []net.Listener{ul}
	if s.cfg.TCP.Address != "" {
		tc, err := s.cfg.tlsConfig()
		if err != nil {
			ul.Close()
			return err
		}
		tl, err := tls.Listen("tcp", s.cfg.TCP.Address, tc)
		if err != nil {
			ul.Close()
			return fmt.Errorf("listen on %s: %w", s.cfg.TCP.Address, err)
		}
		listeners = append(listeners, tl)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: event streams are long-lived by design.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		BaseContext:    func(net.Listener) context.Context { return ctx },
		// TLS handshake failures and the like go to the server's log.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	go s.capLogsLoop(ctx)
	errs := make(chan error, len(listeners))
	for _, l := range listeners {
		s.log.Info("vordr serve listening", "address", l.Addr().String(), "namespace", s.cfg.Namespace, "containerd", s.cfg.Containerd)
		go func(l net.Listener) { errs <- srv.Serve(l) }(l)
	}
	select {
	case <-ctx.Done():
	case err := <-errs:
		if !errors.Is(err, http.ErrServerClosed) {
			_ = srv.Close()
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	return nil
}
