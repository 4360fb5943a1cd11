package infra

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestPoolsRedisDialer(t *testing.T) {
	var dialed []string
	p := NewPools(PoolOptions{RedisDialer: func(_ context.Context, _, addr string) (net.Conn, error) {
		dialed = append(dialed, addr)
		return nil, errors.New("dialer says no")
	}})
	defer p.Close()
	c, release, err := p.Redis(context.Background(), "redis://127.0.0.1:1/0")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "dialer says no") {
		t.Fatalf("ping: %v, want the dialer's error", err)
	}
	if len(dialed) == 0 || dialed[0] != "127.0.0.1:1" {
		t.Fatalf("dialed %v", dialed)
	}
}
