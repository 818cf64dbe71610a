// peer-gohttp: Go net/http/httputil.ReverseProxy in front of one HTTP/1.1
// upstream, configured as Go's docs recommend for proxying LLM streams:
// upstream keep-alive with a large idle pool, FlushInterval -1 (flush every
// write; ReverseProxy already does this for text/event-stream), no
// compression negotiation. Run with GOMAXPROCS=1 by bench/compare.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "listen address")
	upstream := flag.String("upstream", "", "upstream base URL, e.g. http://127.0.0.1:8000")
	portFile := flag.String("port-file", "", "write {\"api\":PORT} here once listening")
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" {
		log.Fatalf("bad --upstream %q", *upstream)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.Transport = &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	rp.ErrorLog = log.New(os.Stderr, "peer-gohttp: ", 0)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	writePortFile(*portFile, ln.Addr().(*net.TCPAddr).Port)
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 300 * time.Second}
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
