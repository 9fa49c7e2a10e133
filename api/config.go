package api

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"github.com/pelletier/go-toml/v2"

	"github.com/vordr-project/vordr/config"
)

// Defaults of the serve configuration.
const (
	DefaultSocket       = "/run/vordr/api.sock"
	DefaultConfigPath   = "/etc/vordr/serve.toml"
	DefaultKeysPath     = "/etc/vordr/api-keys.json"
	DefaultStateDir     = "/var/lib/vordr/serve"
	DefaultContainerd   = "/run/containerd/containerd.sock"
	DefaultNamespace    = "default"
	DefaultSnapshotter  = "overlayfs"
	DefaultRate         = 10
	DefaultBurst        = 20
	DefaultMaxBodyBytes = 64 << 10
	DefaultMaxStreams   = 8
	// DefaultMaxBundleBytes bounds a bundle sent to POST /api/v1/verify/bundle.
	DefaultMaxBundleBytes = 512 << 20
	// DefaultMaxLogBytes bounds the output log of one container run
	// through the API.
	DefaultMaxLogBytes = 16 << 20
	// Runtime is the only runtime the API creates containers with.
	Runtime = "io.containerd.vordr.v1"
)

// Config is `vordr serve`'s configuration (the operator's file, e.g.
// /etc/vordr/serve.toml).
type Config struct {
	// Socket is the unix socket the API listens on (mode 0600).
	Socket string `toml:"socket"`
	// TCP, when its address is set, also serves the API over TLS.
	TCP TCP `toml:"tcp"`
	// Containerd is containerd's gRPC socket, Namespace the namespace the
	// API works in, Snapshotter the one containers' rootfs is prepared by.
	Containerd  string `toml:"containerd"`
	Namespace   string `toml:"namespace"`
	Snapshotter string `toml:"snapshotter"`
	// RuntimeConfig is the vordr runtime config containers run under; it
	// is sent to the shim as runtime options (ConfigPath). Empty: the
	// shim's node default ($VORDR_CONFIG or /etc/vordr/runtime.toml).
	// Its [events] dir is where the API reads event logs.
	RuntimeConfig string `toml:"runtime_config"`
	// Keys is the API key file.
	Keys string `toml:"keys"`
	// StateDir holds the containers' stdout/stderr logs (on disk by
	// default, not on /run's tmpfs: a chatty container's output is not
	// bounded yet) and exec FIFOs.
	StateDir string `toml:"state_dir"`
	// Limits bound each identity.
	Limits Limits `toml:"limits"`
	// Pull allows pulls from named registries.
	Pull Pull `toml:"pull"`
	// OIDC, when its issuer is set, accepts the issuer's JWTs as well as
	// API keys.
	OIDC OIDC `toml:"oidc"`
	// Source is the file the settings came from.
	Source string `toml:"-"`
}

// TCP is the optional TLS listener.
type TCP struct {
	Address string `toml:"address"`
	Cert    string `toml:"cert"`
	Key     string `toml:"key"`
	// ClientCA, when set, requires clients to present a certificate it
	// signed (mutual TLS), in addition to an API key.
	ClientCA string `toml:"client_ca"`
}

// Limits bound what one identity may ask.
type Limits struct {
	// Rate is requests per second per identity (token bucket), Burst the
	// bucket size. A negative rate disables the limit.
	Rate  float64 `toml:"rate"`
	Burst int     `toml:"burst"`
	// MaxBodyBytes bounds request bodies (413 beyond).
	MaxBodyBytes int64 `toml:"max_body_bytes"`
	// MaxBundleBytes bounds a .ctp bundle sent for verification (413
	// beyond); default 512 MiB.
	MaxBundleBytes int64 `toml:"max_bundle_bytes"`
	// StopTimeout is how long stop waits after SIGTERM before SIGKILL.
	StopTimeout string `toml:"stop_timeout"`
	// MaxStreams bounds the event streams (follow=1) one key holds open.
	MaxStreams int `toml:"max_streams"`
	// MaxLogBytes bounds a container's output log (default 16 MiB): the
	// workload decides how much it prints, and the log is on the node's
	// disk. Beyond it the newest half is kept in <log>.1 and the log
	// starts again, so at most about 1.5× this stays per container.
	MaxLogBytes int64 `toml:"max_log_bytes"`
}

// StopGrace returns the parsed stop timeout.
func (l Limits) StopGrace() time.Duration {
	d, err := time.ParseDuration(l.StopTimeout)
	if err != nil || d <= 0 {
		return 10 * time.Second
	}
	return d
}

// ParseConfig reads a serve configuration and fills defaults.
func ParseConfig(data []byte, source string) (*Config, error) {
	var c Config
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			return nil, fmt.Errorf("serve config %s: unknown keys (see docs/api.md for the settings):\n%s: %w", source, sm.String(), errdefs.ErrInvalidArgument)
		}
		return nil, fmt.Errorf("serve config %s: %w: %w", source, err, errdefs.ErrInvalidArgument)
	}
	c.Source = source
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Socket, DefaultSocket)
	def(&c.Containerd, DefaultContainerd)
	def(&c.Namespace, DefaultNamespace)
	def(&c.Snapshotter, DefaultSnapshotter)
	def(&c.Keys, DefaultKeysPath)
	def(&c.StateDir, DefaultStateDir)
	if c.Limits.Rate == 0 {
		c.Limits.Rate = DefaultRate
	}
	if c.Limits.Burst == 0 {
		c.Limits.Burst = DefaultBurst
	}
	if c.Limits.MaxStreams <= 0 {
		c.Limits.MaxStreams = DefaultMaxStreams
	}
	if c.Limits.MaxBodyBytes <= 0 {
		c.Limits.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Limits.MaxBundleBytes <= 0 {
		c.Limits.MaxBundleBytes = DefaultMaxBundleBytes
	}
	if c.Limits.MaxLogBytes <= 0 {
		c.Limits.MaxLogBytes = DefaultMaxLogBytes
	}
	if c.Limits.StopTimeout != "" {
		if _, err := time.ParseDuration(c.Limits.StopTimeout); err != nil {
			return nil, fmt.Errorf("serve config %s: limits.stop_timeout %q is not a Go duration (e.g. \"10s\"): %w", source, c.Limits.StopTimeout, errdefs.ErrInvalidArgument)
		}
	}
	if c.Pull.Timeout != "" {
		if _, err := time.ParseDuration(c.Pull.Timeout); err != nil {
			return nil, fmt.Errorf("serve config %s: pull.timeout %q is not a Go duration (e.g. \"10m\"): %w", source, c.Pull.Timeout, errdefs.ErrInvalidArgument)
		}
	}
	if err := c.OIDC.validate(source); err != nil {
		return nil, err
	}
	if c.TCP.Address != "" && (c.TCP.Cert == "" || c.TCP.Key == "") {
		return nil, fmt.Errorf("serve config %s: tcp.address is set without tcp.cert and tcp.key; the API is served over TCP only with TLS: %w", source, errdefs.ErrInvalidArgument)
	}
	return &c, nil
}

// LoadConfig reads the serve configuration at path with the checks the
// runtime config gets (regular file, not writable by group or others).
func LoadConfig(path string) (*Config, error) {
	data, err := config.ReadFile(path)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("serve config %s does not exist; write one (make install puts a sample in /etc/vordr/serve.toml; docs/api.md) or pass --config: %w", path, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("serve config: %w", err)
	}
	return ParseConfig(data, path)
}

// runtimeConfig loads the vordr runtime config containers run under.
func (c *Config) runtimeConfig() (*config.Config, error) {
	if c.RuntimeConfig != "" {
		return config.Load(c.RuntimeConfig)
	}
	return config.Default()
}
