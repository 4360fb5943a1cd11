package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"
)

// Server runs the gateway's HTTP server as a manager Runnable on every replica.
type Server struct {
	// Addr is the listen address, e.g. ":8443".
	Addr    string
	Handler http.Handler
	// Certs serves the TLS certificate; nil means plain HTTP (the --gateway-insecure flag).
	Certs CertSource
	Log   logr.Logger
	// Listener, when set, is used instead of listening on Addr (tests).
	Listener net.Listener
	// ShutdownTimeout bounds the graceful drain at stop (default 15s).
	ShutdownTimeout time.Duration
	// Started, when not nil, receives the bound address once the server accepts connections.
	Started chan<- net.Addr
}

// NewHTTPServer returns the http.Server with the gateway's timeouts and limits.
func NewHTTPServer(h http.Handler, certs CertSource) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	if certs != nil {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate}
	}
	return srv
}

// Start serves until ctx ends, then drains in-flight requests.
func (s *Server) Start(ctx context.Context) error {
	ln := s.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.Addr); err != nil {
			return fmt.Errorf("gateway listen on %s: %w", s.Addr, err)
		}
	}
	srv := NewHTTPServer(s.Handler, s.Certs)
	s.Log.Info("gateway serving", "address", ln.Addr().String(), "tls", s.Certs != nil)
	if s.Started != nil {
		s.Started <- ln.Addr()
	}
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			// ServeTLS also offers HTTP/2 to clients that negotiate it; the
			// certificate comes from TLSConfig.GetCertificate.
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("gateway serve: %w", err)
	case <-ctx.Done():
	}
	timeout := s.ShutdownTimeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("gateway serve: %w", err)
	}
	return nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every replica serves.
func (s *Server) NeedLeaderElection() bool { return false }
