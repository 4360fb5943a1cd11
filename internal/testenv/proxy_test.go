package testenv

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// echoServer answers every line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

type line struct {
	c net.Conn
	r *bufio.Reader
}

func dialLine(t *testing.T, addr string) *line {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &line{c: c, r: bufio.NewReader(c)}
}

// roundTrip sends msg and waits up to wait for its echo.
func (l *line) roundTrip(msg string, wait time.Duration) (string, error) {
	_ = l.c.SetDeadline(time.Now().Add(wait))
	if _, err := l.c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	return l.read(wait)
}

func (l *line) read(wait time.Duration) (string, error) {
	_ = l.c.SetReadDeadline(time.Now().Add(wait))
	s, err := l.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return s[:len(s)-1], nil
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

func TestProxyModes(t *testing.T) {
	p, err := StartProxy(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const wait = 5 * time.Second
	const quiet = 300 * time.Millisecond // how long "nothing arrives" is watched

	open := dialLine(t, p.Addr())
	if got, err := open.roundTrip("one", wait); err != nil || got != "one" {
		t.Fatalf("pass: %q, %v", got, err)
	}

	// Stall: the open connection and a new one stay open, nothing comes through.
	p.Stall()
	if p.Mode() != ProxyStall {
		t.Fatalf("mode %v", p.Mode())
	}
	if _, err := open.roundTrip("two", quiet); !isTimeout(err) {
		t.Fatalf("stalled open connection: %v, want a timeout", err)
	}
	fresh := dialLine(t, p.Addr())
	if _, err := fresh.roundTrip("three", quiet); !isTimeout(err) {
		t.Fatalf("stalled new connection: %v, want a timeout", err)
	}
	// Back to pass: the held bytes arrive.
	p.Pass()
	if got, err := open.read(wait); err != nil || got != "two" {
		t.Fatalf("after the stall, open connection: %q, %v", got, err)
	}
	if got, err := fresh.read(wait); err != nil || got != "three" {
		t.Fatalf("after the stall, new connection: %q, %v", got, err)
	}

	// Drop: open connections end, new ones end at once.
	p.Drop()
	if _, err := open.read(wait); err == nil || isTimeout(err) {
		t.Fatalf("dropped open connection: %v, want it closed", err)
	}
	dropped := dialLine(t, p.Addr())
	if _, err := dropped.roundTrip("four", wait); err == nil || isTimeout(err) {
		t.Fatalf("new connection while dropping: %v, want it closed", err)
	}

	// A stall that ends in a drop resets the held connections.
	p.Pass()
	held := dialLine(t, p.Addr())
	if got, err := held.roundTrip("five", wait); err != nil || got != "five" {
		t.Fatalf("pass again: %q, %v", got, err)
	}
	p.Stall()
	if _, err := held.roundTrip("six", quiet); !isTimeout(err) {
		t.Fatalf("stalled: %v", err)
	}
	p.Drop()
	if _, err := held.read(wait); err == nil || isTimeout(err) {
		t.Fatalf("stall then drop: %v, want it closed", err)
	}
	p.Pass()
	if got, err := dialLine(t, p.Addr()).roundTrip("seven", wait); err != nil || got != "seven" {
		t.Fatalf("pass after drop: %q, %v", got, err)
	}
}
