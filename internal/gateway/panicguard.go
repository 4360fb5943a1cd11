package gateway

import (
	"fmt"
	"runtime/debug"

	"github.com/valyala/fasthttp"
)

// The gateway runs in the manager's process, beside the controller: a defect that
// panics while serving one request must cost that request, not the process.

// recovered answers a request whose handling panicked with v: one log line with
// the stack, the panics counter, and a JSON 500 in place of whatever the response
// held. It returns the error code written.
func (h *Handler) recovered(rc *fasthttp.RequestCtx, v any) Code {
	h.o.Metrics.panics.Inc()
	h.o.Log.Error(fmt.Errorf("panic: %v", v), "request handling panicked; answered 500",
		"method", string(rc.Method()), "path", string(rc.Path()), "stack", string(debug.Stack()))
	rc.Response.Reset()
	return writeError(rc, apiErrorf(CodeInternal, "internal error while serving the request"))
}

// guard runs fn and reports a panic of fn as recovered does (for the server's
// callbacks that do not answer the request themselves).
func (h *Handler) guard(what string, fn func()) (panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			panicked = true
			h.o.Metrics.panics.Inc()
			h.o.Log.Error(fmt.Errorf("panic: %v", v), what+" panicked", "stack", string(debug.Stack()))
		}
	}()
	fn()
	return false
}
