//go:build linux

package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T, dir, name string) (certPath, keyPath string, cert tls.Certificate, pool *x509.CertPool) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})
	if err := os.WriteFile(certPath, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certPath, keyPath, cert, pool
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestServeListeners: the unix socket is 0600 and removed at shutdown; TCP
// is TLS, with a client certificate required when client_ca is set.
func TestServeListeners(t *testing.T) {
	dir, err := os.MkdirTemp("", "vsrv-unit-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	srvCert, srvKey, _, serverPool := writeCert(t, dir, "server")
	caCert, _, clientCert, _ := writeCert(t, dir, "client")
	s, _ := testServer(t, Limits{})
	addr := freePort(t)
	s.cfg.Socket = filepath.Join(dir, "api.sock")
	s.cfg.TCP = TCP{Address: addr, Cert: srvCert, Key: srvKey, ClientCA: caCert}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	unix := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", s.cfg.Socket)
	}}}
	get := func(c *http.Client, url string) (int, error) {
		resp, err := c.Get(url)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, err := get(unix, "http://vordr/healthz"); err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the unix socket never answered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if fi, err := os.Stat(s.cfg.Socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket: %v %v", fi.Mode(), err)
	}
	withCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverPool, Certificates: []tls.Certificate{clientCert}}}}
	if code, err := get(withCert, "https://"+addr+"/healthz"); err != nil || code != 200 {
		t.Errorf("TLS with a client certificate: %d %v", code, err)
	}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverPool}}}
	if _, err := get(noCert, "https://"+addr+"/healthz"); err == nil {
		t.Error("TLS without a client certificate was served although client_ca is set")
	}
	if code, err := get(&http.Client{}, "http://"+addr+"/healthz"); err == nil && code == 200 {
		t.Error("plain HTTP was served on the TLS port")
	}
	// A second server on the same socket is refused rather than stealing it.
	if _, err := ListenUnix(s.cfg.Socket); err == nil {
		t.Error("a second listener took over a live socket")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := os.Lstat(s.cfg.Socket); err == nil {
		t.Error("the socket was left behind")
	}
	// A stale socket (no server) is replaced.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.cfg.Socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	l2, err := ListenUnix(s.cfg.Socket)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	l2.Close()
}
