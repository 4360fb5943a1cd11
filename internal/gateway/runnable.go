package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/go-logr/logr"
	"github.com/valyala/fasthttp"
)

// Server runs the gateway's HTTP/1.1 server (fasthttp: keep-alive connections, no
// allocation per request in the server itself) as a manager Runnable on every replica.
type Server struct {
	// Addr is the listen address, e.g. ":8443".
	Addr    string
	Handler *Handler
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

// Server limits and timeouts (the read timeouts are in preauth.go).
const (
	writeTimeout = 60 * time.Second
	idleTimeout  = 120 * time.Second
	// maxHeaderBytes is the per-connection read buffer, which bounds a request's headers.
	maxHeaderBytes = 32 << 10
)

// newHTTPServer returns the fasthttp server with the gateway's timeouts and limits;
// requests run h.Serve with base as their context. Each request is authenticated
// from its headers before its body is read (preauth.go). ReadTimeout bounds the
// headers; the hook gives an accepted request's body its own deadline.
func newHTTPServer(base context.Context, h *Handler, log logr.Logger) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:      func(rc *fasthttp.RequestCtx) { h.Serve(base, rc) },
		ErrorHandler: func(rc *fasthttp.RequestCtx, err error) { h.serveError(base, rc, err) },
		HeaderReceived: func(hdr *fasthttp.RequestHeader) fasthttp.RequestConfig {
			return h.headerReceived(base, hdr)
		},
		Concurrency:                  h.o.Limits.MaxConns,
		MaxConnsPerIP:                h.o.Limits.MaxConnsPerIP,
		ReadTimeout:                  headerReadTimeout,
		WriteTimeout:                 writeTimeout,
		IdleTimeout:                  idleTimeout,
		ReadBufferSize:               maxHeaderBytes,
		MaxRequestBodySize:           int(h.o.Limits.MaxBodyBytes),
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		Logger:                       fasthttpLogger{log},
	}
}

// fasthttpLogger passes the server's own messages (connection errors, timeouts) to
// the log at debug level.
type fasthttpLogger struct{ log logr.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.V(1).Info(fmt.Sprintf(format, args...))
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
	if s.Certs != nil {
		// HTTP/1.1 only: many keep-alive connections are what workers open, and
		// what the server is fastest at.
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.Certs.GetCertificate,
			NextProtos: []string{"http/1.1"}})
	}
	// Requests keep the manager's values but not its cancellation: the drain below
	// lets them finish.
	srv := newHTTPServer(context.WithoutCancel(ctx), s.Handler, s.Log)
	s.Log.Info("gateway serving", "address", ln.Addr().String(), "tls", s.Certs != nil)
	if s.Started != nil {
		s.Started <- ln.Addr()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
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
	shutdownErr := srv.ShutdownWithContext(sctx)
	if err := <-errc; err != nil {
		return fmt.Errorf("gateway serve: %w", err)
	}
	if shutdownErr != nil {
		return fmt.Errorf("gateway shutdown: %w", shutdownErr)
	}
	return nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every replica serves.
func (s *Server) NeedLeaderElection() bool { return false }
