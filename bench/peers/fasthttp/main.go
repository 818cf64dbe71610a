// peer-fasthttp: a fasthttp reverse proxy (fasthttp.HostClient with upstream
// keep-alive) in front of one HTTP/1.1 upstream. Run with GOMAXPROCS=1.
//
// Known limitation, reported by bench/compare as a finding: fasthttp 1.31's
// HostClient reads the whole upstream response before returning it (response
// body streaming arrived in later releases), so SSE streams are delivered
// buffered: time-to-first-token equals the whole generation time.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/valyala/fasthttp"
)

var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "listen address")
	upstream := flag.String("upstream", "", "upstream base URL, e.g. http://127.0.0.1:8000")
	portFile := flag.String("port-file", "", "write {\"api\":PORT} here once listening")
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" {
		log.Fatalf("bad --upstream %q", *upstream)
	}
	hc := &fasthttp.HostClient{
		Addr:                u.Host,
		MaxConns:            8192,
		MaxIdleConnDuration: 90 * time.Second,
		ReadTimeout:         300 * time.Second,
		WriteTimeout:        30 * time.Second,
		MaxResponseBodySize: 64 << 20,
		// Keep the upstream connection alive; no response body size limit beyond the above.
		DisableHeaderNamesNormalizing: true,
	}
	handler := func(ctx *fasthttp.RequestCtx) {
		req := &ctx.Request
		for _, h := range hopHeaders {
			req.Header.Del(h)
		}
		req.SetHost(u.Host)
		resp := &ctx.Response
		if err := hc.Do(req, resp); err != nil {
			ctx.Error("upstream error: "+err.Error(), fasthttp.StatusBadGateway)
			return
		}
		for _, h := range hopHeaders {
			resp.Header.Del(h)
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	writePortFile(*portFile, ln.Addr().(*net.TCPAddr).Port)
	srv := &fasthttp.Server{
		Handler:            handler,
		Name:               "peer-fasthttp",
		MaxRequestBodySize: 64 << 20,
		ReadTimeout:        300 * time.Second,
		IdleTimeout:        300 * time.Second,
		Concurrency:        1 << 20,
	}
	log.Fatal(srv.Serve(ln))
}

func writePortFile(path string, port int) {
	if path == "" {
		return
	}
	if err := os.WriteFile(path+".tmp", []byte(fmt.Sprintf("{\"api\":%d}\n", port)), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		log.Fatal(err)
	}
}
