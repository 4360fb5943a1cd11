package infra

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

func TestParseMongoURI(t *testing.T) {
	tests := []struct {
		uri     string
		invalid bool
	}{
		{"mongodb://127.0.0.1:27017/", false},
		{"mongodb://user:p%40ss@h1:1,h2:2/?replicaSet=rs&authSource=admin", false},
		{"  mongodb://h/  ", false},
		{"http://h/", true},
		{"h:27017", true},
		{"mongodb://", true},
		{"mongodb://user:pa:ss@h/", true},
		{"mongodb://h/?connectTimeoutMS=abc", true},
		{"mongodb+srv://h1:27017,h2/", true}, // SRV takes one host without port
		// what would break read-your-writes: reads off the primary, unacknowledged writes
		{"mongodb://h/?readPreference=secondaryPreferred", true},
		{"mongodb://h/?readPreference=nearest", true},
		{"mongodb://h/?readPreference=primary", false},
		{"mongodb://h/?w=0", true},
		{"mongodb://h/?w=majority&journal=true", false},
		{"mongodb://h/?w=1", false},
	}
	for _, tc := range tests {
		t.Run(tc.uri, func(t *testing.T) {
			_, err := ParseMongoURI(tc.uri)
			if got := IsInvalidURI(err); got != tc.invalid {
				t.Fatalf("ParseMongoURI(%q) error %v, invalid=%t want %t", tc.uri, err, got, tc.invalid)
			}
			if err != nil && strings.Contains(err.Error(), "pa:ss") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestParseRedisURL(t *testing.T) {
	tests := []struct {
		url         string
		invalid     bool
		addrs       int
		cluster     bool
		master      string
		tls         bool
		db          int
		password    string
		sentinelPwd string
	}{
		{url: "redis://127.0.0.1:6379", addrs: 1},
		{url: "redis://:secret@h:6379/3", addrs: 1, db: 3, password: "secret"},
		{url: "rediss://h:6380", addrs: 1, tls: true},
		{url: "redis://h1:6379?addr=h2:6379&addr=h3:6379", addrs: 3, cluster: true},
		{url: "redis+cluster://h1:6379", addrs: 1, cluster: true},
		{url: "rediss+cluster://h1:6379?addr=h2:6379", addrs: 2, cluster: true, tls: true},
		{url: "redis://:sp@s1:26379?master_name=mymaster&addr=s2:26379&password=mp", addrs: 2, master: "mymaster", sentinelPwd: "sp", password: "mp"},
		{url: "redis+sentinel://s1:26379?master_name=m", addrs: 1, master: "m"},
		{url: "redis+sentinel://s1:26379", invalid: true},
		{url: "http://h:6379", invalid: true},
		{url: "redis+foo://h", invalid: true},
		{url: "redis://", invalid: true},
		{url: "redis://h:6379/notanumber", invalid: true},
		{url: "redis://h:6379?bogus=1", invalid: true},
		{url: "::not a url", invalid: true},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			o, err := ParseRedisURL(tc.url)
			if tc.invalid {
				if !IsInvalidURI(err) {
					t.Fatalf("want InvalidURIError, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(o.Addrs) != tc.addrs || o.IsClusterMode != tc.cluster || o.MasterName != tc.master ||
				(o.TLSConfig != nil) != tc.tls || o.DB != tc.db || o.Password != tc.password || o.SentinelPassword != tc.sentinelPwd {
				t.Fatalf("options %+v do not match %+v", o, tc)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"nil", nil, ClassNone},
		{"secret missing", fmt.Errorf("x: %w", &SecretMissingError{"ns", "s"}), ClassSecretMissing},
		{"key missing", &KeyMissingError{"ns", "s", "k"}, ClassKeyMissing},
		{"invalid", &InvalidURIError{"mongo URI", "bad"}, ClassInvalidURI},
		{"refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, ClassUnreachable},
		{"dns", &net.DNSError{Err: "no such host", Name: "x"}, ClassUnreachable},
		{"eof", fmt.Errorf("read: %w", io.EOF), ClassUnreachable},
		{"explicit unreachable", &UnreachableError{"mongo", errors.New("x")}, ClassUnreachable},
		{"redis wrongpass", errors.New("WRONGPASS invalid username-password pair or user is disabled."), ClassAuthFailed},
		{"redis noauth", errors.New("NOAUTH Authentication required."), ClassAuthFailed},
		{"mongo code 18", mongo.CommandError{Code: 18, Message: "Authentication failed."}, ClassAuthFailed},
		{"other command error", mongo.CommandError{Code: 2, Message: "bad"}, ClassCheckFailed},
		{"anything else", errors.New("boom"), ClassCheckFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.err); got != tc.want {
				t.Fatalf("Classify(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
