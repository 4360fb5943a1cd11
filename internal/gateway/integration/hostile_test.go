package integration

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/backtestpersistence/operator/internal/gateway"
	"github.com/backtestpersistence/operator/internal/persist"
)

// rawExchange sends raw bytes over a new TLS connection to g and reads one
// response. The request is written while the response is read, as a client that
// streams a body does; the write may fail once the server has answered and closed.
func rawExchange(t *testing.T, g *instance, raw string) (int, []byte) {
	t.Helper()
	u, _ := url.Parse(g.url)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(suite.certPEM)
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	go func() { _, _ = io.WriteString(conn, raw) }()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, body
}

// request builds a raw HTTP/1.1 request with a Content-Length body.
func request(method, path, token, body string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: gateway\r\n", method, path)
	if token != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", token)
	}
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// chunked builds a raw HTTP/1.1 request with a chunked body of n bytes of filler.
func chunked(path, token string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: gateway\r\n", path)
	if token != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", token)
	}
	b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	chunk := strings.Repeat("z", 64<<10)
	for left := n; left > 0; left -= len(chunk) {
		c := chunk[:min(len(chunk), left)]
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(c), c)
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

// cutAt returns a state write of exactly n bytes whose value string is cut off at
// the end, inside the string, or right after the escape `tail` began.
func cutAt(n int, tail string) string {
	prefix := `{"kind":"state","op":"write","key":{"signalId":"hostile","bucketName":"b"},"when":1,"value":"`
	return prefix + strings.Repeat("a", n-len(prefix)-len(tail)) + tail
}

// fakeJWT is a JWT-shaped token with the given claims and a signature nobody made.
func fakeJWT(alg, claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"`+alg+`","kid":"x"}`)) + "." + enc([]byte(claims)) + "." + enc([]byte("not a signature"))
}

// TestHostileRequests: each hostile request gets its 4xx JSON error, nothing is
// written, and the gateway serves a valid write and read after each one.
func TestHostileRequests(t *testing.T) {
	a, g := suite.a, suite.gws[0]
	tok := suite.tokens["a-writer"]
	ops, batch := opsPath(a.ns, a.name), batchPath(a.ns, a.name)
	probeKey := `{"signalId":"hostile-probe","bucketName":"b"}`
	probe := func(i int) {
		t.Helper()
		val := fmt.Sprintf(`{"after":%d}`, i)
		if status, body := post(g, tok, ops, `{"kind":"state","op":"write","key":`+probeKey+`,"value":`+val+`,"when":`+fmt.Sprint(i+1)+`}`); status != 200 {
			t.Fatalf("valid write after hostile request %d: %d %s", i, status, body)
		}
		if status, body := post(g, tok, ops, `{"kind":"state","op":"read","key":`+probeKey+`}`); status != 200 || string(body) != `{"value":`+val+`}` {
			t.Fatalf("valid read after hostile request %d: %d %s", i, status, body)
		}
	}
	probe(0)
	before := countDocuments(t, a)

	type hostile struct {
		name   string
		raw    string
		status int
	}
	var cases []hostile
	for n := 128; n <= 8192; n *= 2 {
		cases = append(cases,
			hostile{fmt.Sprintf("ends inside a string at %d bytes", n), request("POST", ops, tok, cutAt(n, "")), 400},
			hostile{fmt.Sprintf("ends inside an escape at %d bytes", n), request("POST", ops, tok, cutAt(n, `\`)), 400},
		)
	}
	for _, n := range []int{256, 1024, 4096} {
		cases = append(cases,
			hostile{fmt.Sprintf("ends inside a \\u escape at %d bytes", n), request("POST", ops, tok, cutAt(n, `\u00`)), 400},
			hostile{fmt.Sprintf("batch ends inside an escape at %d bytes", n), request("POST", batch, tok, `{"ops":[`+cutAt(n-8, `\`)), 400},
		)
	}
	stateWrite := func(value string) string {
		return `{"kind":"state","op":"write","key":{"signalId":"hostile","bucketName":"b"},"value":` + value + `,"when":1}`
	}
	bigBody := stateWrite(`"` + strings.Repeat("x", int(gateway.DefaultLimits.MaxBodyBytes)) + `"`)
	cases = append(cases, []hostile{
		{"deep nesting, unclosed", request("POST", ops, tok, stateWrite(strings.Repeat("[", 100000))), 400},
		{"deep nesting, closed", request("POST", ops, tok, stateWrite(strings.Repeat("[", 5000)+strings.Repeat("]", 5000))), 400},
		{"deep nesting of objects", request("POST", ops, tok, stateWrite(strings.Repeat(`{"a":`, 5000)+"1"+strings.Repeat("}", 5000))), 400},
		{"dictionary nested too deep", request("POST", ops, tok, `{"kind":"dictionary","op":"write","key":{"signalId":"hostile","dictionaryName":"d"},"value":{"data":`+strings.Repeat("[", 5000)+strings.Repeat("]", 5000)+`},"when":1}`), 400},
		{"dictionary with the state key", request("POST", ops, tok, `{"kind":"dictionary","op":"write","key":{"signalId":"hostile","bucketName":"b"},"value":{},"when":1}`), 400},
		{"dictionary as null", request("POST", ops, tok, `{"kind":"dictionary","op":"write","key":{"signalId":"hostile","dictionaryName":"d"},"value":null,"when":1}`), 400},
		{"dictionary over the payload limit", request("POST", ops, tok, `{"kind":"dictionary","op":"write","key":{"signalId":"hostile","dictionaryName":"d"},"value":{"data":"`+strings.Repeat("d", persist.DefaultMaxPayloadBytes)+`"},"when":1}`), 413},
		{"nested key object", request("POST", ops, tok, `{"kind":"state","op":"read","key":{"signalId":{"a":{"b":"c"}},"bucketName":"b"}}`), 400},
		{"invalid UTF-8 in the value", request("POST", ops, tok, stateWrite("\"\xff\xfe\xfd\"")), 400},
		{"invalid UTF-8 in a key", request("POST", ops, tok, "{\"kind\":\"state\",\"op\":\"write\",\"key\":{\"signalId\":\"\xc3\x28\",\"bucketName\":\"b\"},\"value\":1,\"when\":1}"), 400},
		{"a UTF-16 surrogate in UTF-8", request("POST", ops, tok, stateWrite("\"\xed\xa0\x80\"")), 400},
		{"huge number as when", request("POST", ops, tok, `{"kind":"state","op":"write","key":{"signalId":"hostile","bucketName":"b"},"value":1,"when":1e400}`), 400},
		{"integer over int64 as when", request("POST", ops, tok, `{"kind":"state","op":"write","key":{"signalId":"hostile","bucketName":"b"},"value":1,"when":99999999999999999999}`), 400},
		{"huge number in the value", request("POST", ops, tok, stateWrite(`{"n":1e400}`)), 400},
		{"huge candle limit", request("POST", ops, tok, `{"kind":"candle","op":"read","key":{"exchangeName":"e","symbol":"s","interval":"1m"},"limit":1e30,"since":0,"until":1}`), 400},
		{"duplicate kind", request("POST", ops, tok, `{"kind":"state","kind":"state","op":"write","key":{"signalId":"hostile","bucketName":"b"},"value":{"n":1},"when":1}`), 400},
		{"duplicate key field", request("POST", ops, tok, `{"kind":"state","op":"write","key":{"signalId":"hostile","signalId":"hostile","bucketName":"b"},"value":{"n":1},"when":1}`), 400},
		{"duplicate ops", request("POST", batch, tok, `{"ops":[],"ops":[`+stateWrite(`{"n":1}`)+`]}`), 400},
		{"empty body", request("POST", ops, tok, ""), 400},
		{"body null", request("POST", ops, tok, "null"), 400},
		{"oversized body", request("POST", ops, tok, bigBody), 413},
		{"oversized chunked body", chunked(ops, tok, int(gateway.DefaultLimits.MaxBodyBytes)+1), 413},
		{"oversized body without a token", request("POST", ops, "", bigBody), 401},
		{"oversized chunked body without a token", chunked(ops, "", int(gateway.DefaultLimits.MaxBodyBytes)+1), 401},
		{"chunked body with a forged token", chunked(ops, fakeJWT("RS256", `{"sub":"x"}`), 1<<20), 401},
		{"header bomb", request("POST", ops, tok, stateWrite("1"), "X-Bomb: "+strings.Repeat("b", 40<<10)), 413},
		{"many headers", request("POST", ops, tok, stateWrite("1"), strings.Repeat("X-H: v\r\n", 8000)[:8000*8-2]), 413},
		{"header bomb in the token", request("POST", ops, strings.Repeat("A", 20<<10), stateWrite("1")), 401},
		{"empty namespace", request("POST", "/v1/namespaces//persistences/store/ops", tok, stateWrite("1")), 404},
		{"unknown action", request("POST", "/v1/namespaces/tenant-a/persistences/store/delete", tok, stateWrite("1")), 404},
		{"escaped slash in the name", request("POST", "/v1/namespaces/tenant-a/persistences/st%2Fore/ops", tok, stateWrite("1")), 404},
		{"NUL in the path", request("POST", "/v1/namespaces/tenant-a/persistences/store/ops%00", tok, stateWrite("1")), 404},
		{"odd path without a token", request("POST", "/v1/namespaces/tenant-a/persistences/store/ops/../../../../etc/passwd", "", stateWrite("1")), 401},
		{"GET with a body", request("GET", ops, tok, stateWrite("1")), 405},
		{"DELETE", request("DELETE", ops, tok, ""), 405},
		{"no token", request("POST", ops, "", stateWrite("1")), 401},
		{"forged token", request("POST", ops, fakeJWT("RS256", `{"iss":"kubernetes/serviceaccount","sub":"system:serviceaccount:tenant-a:writer"}`), stateWrite("1")), 401},
		{"expired token", request("POST", ops, fakeJWT("RS256", `{"aud":["backtest-persistence"],"exp":1000000000,"sub":"system:serviceaccount:tenant-a:writer"}`), stateWrite("1")), 401},
		{"unsigned token", request("POST", ops, fakeJWT("none", `{"sub":"system:serviceaccount:tenant-a:writer"}`), stateWrite("1")), 401},
		{"non-JWT token", request("POST", ops, "not-a-jwt", stateWrite("1")), 401},
		{"basic auth", request("POST", ops, "", stateWrite("1"), "Authorization: Basic YTpi"), 401},
		{"token for the API server's audience", request("POST", ops, suite.tokens["a-writer-api-audience"], stateWrite("1")), 401},
	}...)
	if len(cases) < 40 {
		t.Fatalf("only %d hostile requests", len(cases))
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := rawExchange(t, g, c.raw)
			if status != c.status {
				t.Fatalf("status %d, want %d: %.300s", status, c.status, body)
			}
			e := apiError(t, body)
			if e.Code.Status() != status {
				t.Fatalf("status %d with code %s", status, e.Code)
			}
			probe(i + 1)
		})
	}
	if after := countDocuments(t, a); after != before {
		t.Fatalf("hostile requests changed the database: %d documents before, %d after", before, after)
	}
}
