package testenv

import (
	"errors"
	"net"
	"sync"
)

// ProxyMode is what a Proxy does with connections.
type ProxyMode int

// Proxy modes.
const (
	// ProxyPass forwards bytes both ways.
	ProxyPass ProxyMode = iota
	// ProxyDrop resets every open connection and every new one at once.
	ProxyDrop
	// ProxyStall accepts connections and keeps them open, but forwards nothing in
	// either direction (a hung server or a black-holed network path) until the mode
	// changes: back to pass, the held bytes flow on; to drop, the connections reset.
	ProxyStall
)

func (m ProxyMode) String() string {
	switch m {
	case ProxyPass:
		return "pass"
	case ProxyDrop:
		return "drop"
	case ProxyStall:
		return "stall"
	}
	return "?"
}

// Proxy is a TCP proxy on a free loopback port in front of one address, for cutting
// one client's path to a server while other clients keep theirs.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	mode    ProxyMode
	changed chan struct{} // closed and replaced on every mode change
	conns   map[net.Conn]struct{}
	closed  bool
	wg      sync.WaitGroup
}

// StartProxy listens on a free loopback port and forwards to target (host:port).
func StartProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, changed: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is host:port clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Mode is the current mode.
func (p *Proxy) Mode() ProxyMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Pass forwards again; stalled connections resume.
func (p *Proxy) Pass() { p.set(ProxyPass) }

// Drop resets every open connection and every new one until the mode changes.
func (p *Proxy) Drop() { p.set(ProxyDrop) }

// Stall holds every open and new connection without forwarding until the mode changes.
func (p *Proxy) Stall() { p.set(ProxyStall) }

func (p *Proxy) set(m ProxyMode) {
	p.mu.Lock()
	p.mode = m
	close(p.changed)
	p.changed = make(chan struct{})
	var victims []net.Conn
	if m == ProxyDrop {
		for c := range p.conns {
			victims = append(victims, c)
			delete(p.conns, c)
		}
	}
	p.mu.Unlock()
	for _, c := range victims {
		reset(c)
	}
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.set(ProxyDrop)
	p.wg.Wait()
}

// reset closes c with a TCP reset (no graceful FIN), as a cut network path or a
// crashed peer would look to a client that writes next.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// track registers c unless the proxy drops connections; false means c was reset.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == ProxyDrop || p.closed {
		reset(c)
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if !p.track(c) {
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve connects the client c to the target once the mode lets bytes through.
func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	defer p.untrack(c)
	if !p.gate() {
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		reset(c)
		return
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	done := make(chan struct{}, 2)
	go func() { p.pipe(up, c); done <- struct{}{} }()
	go func() { p.pipe(c, up); done <- struct{}{} }()
	<-done
	// One direction ended: end the other too.
	_ = c.Close()
	_ = up.Close()
	<-done
}

// gate waits while the proxy stalls; false once it drops or is closed.
func (p *Proxy) gate() bool {
	for {
		p.mu.Lock()
		mode, changed, closed := p.mode, p.changed, p.closed
		p.mu.Unlock()
		switch {
		case closed || mode == ProxyDrop:
			return false
		case mode == ProxyPass:
			return true
		}
		<-changed
	}
}

// pipe copies src to dst, holding each chunk at the gate.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.gate() {
				reset(dst)
				reset(src)
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or an error: serve closes both sides
		}
	}
}
