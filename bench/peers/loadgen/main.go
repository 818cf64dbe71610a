// peer-loadgen: a small closed-loop HTTP load generator for bench/compare,
// speaking HTTP/1.1 (Go net/http) or HTTP/3 (quic-go 0.29). It exists for
// two reasons: the quic-go peer can only be measured by an HTTP/3 client,
// and streaming figures (time to first token, inter-event gaps, chunk
// fidelity) need a client that timestamps every read, which wrk cannot do.
//
// Each of --concurrency workers sends the same POST in a loop for --warmup +
// --duration seconds; requests completing during the warm-up are not counted,
// and requests still in flight at the end are cancelled and not counted.
// For text/event-stream responses every read that completes at least one SSE
// event is timestamped: TTFT = first such read after the request was sent;
// gap = time between consecutive such reads; a new "arrival group" starts
// when the gap is at least half of --itl-ms, and fidelity = groups / expected
// upstream writes (--expect-writes), capped at 1 ("arrival_fidelity": 1.0
// means every token arrived on its own, ~0 means the stream was buffered and
// delivered at once). "fidelity" is events received / events expected
// (--expect-events per stream): 1.0 means no event was lost or merged away.
// The result is one JSON object on stdout (or --json FILE).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lucas-clemente/quic-go"
	"github.com/lucas-clemente/quic-go/http3"
)

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

type stats struct {
	lat, ttft, gap               []float64
	requests, errors, statusErrs int64
	streams, incomplete, events  int64
	groups, expectedGroups       int64
	bytesIn                      int64
	errSample                    string
}

func (s *stats) merge(o *stats) {
	s.lat = append(s.lat, o.lat...)
	s.ttft = append(s.ttft, o.ttft...)
	s.gap = append(s.gap, o.gap...)
	s.requests += o.requests
	s.errors += o.errors
	s.statusErrs += o.statusErrs
	s.streams += o.streams
	s.incomplete += o.incomplete
	s.events += o.events
	s.groups += o.groups
	s.expectedGroups += o.expectedGroups
	s.bytesIn += o.bytesIn
	if s.errSample == "" {
		s.errSample = o.errSample
	}
}

type summary struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	N    int     `json:"n"`
}

func summarize(v []float64) *summary {
	if len(v) == 0 {
		return nil
	}
	sort.Float64s(v)
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(v)))) - 1
		if i < 0 {
			i = 0
		}
		return v[i]
	}
	r := func(x float64) float64 { return math.Round(x*1000) / 1000 }
	return &summary{Mean: r(sum / float64(len(v))), P50: r(q(0.5)), P90: r(q(0.9)), P99: r(q(0.99)), Max: r(v[len(v)-1]), N: len(v)}
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func main() {
	url := flag.String("url", "", "target URL")
	proto := flag.String("proto", "h1", "h1 or h3")
	conc := flag.Int("concurrency", 1, "closed-loop workers")
	dur := flag.Float64("duration", 5, "seconds measured (after --warmup)")
	warmup := flag.Float64("warmup", 0, "seconds of load before measuring starts (connections stay open)")
	bodyFile := flag.String("body-file", "", "POST body (JSON)")
	itl := flag.Float64("itl-ms", 0, "expected inter-token gap, for arrival grouping")
	expectEvents := flag.Int("expect-events", 0, "SSE events per complete stream (0: do not check)")
	expectWrites := flag.Int("expect-writes", 0, "upstream writes per stream (for fidelity)")
	h3conns := flag.Int("h3-connections", 1, "QUIC connections to spread workers over (h3)")
	jsonOut := flag.String("json", "", "write the result here instead of stdout")
	timeout := flag.Float64("timeout", 120, "per-request timeout, seconds")
	var hdrs headerList
	flag.Var(&hdrs, "H", "extra request header 'k: v' (repeatable)")
	flag.Parse()
	if *url == "" {
		log.Fatal("--url is required")
	}
	var body []byte
	if *bodyFile != "" {
		b, err := os.ReadFile(*bodyFile)
		if err != nil {
			log.Fatal(err)
		}
		body = b
	}
	headers := http.Header{}
	headers.Set("Content-Type", "application/json")
	for _, h := range hdrs {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			log.Fatalf("bad header %q", h)
		}
		headers.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}

	var clients []*http.Client
	var closers []io.Closer
	switch *proto {
	case "h1":
		tr := &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: *conc + 16,
			MaxConnsPerHost:     0,
			IdleConnTimeout:     300 * time.Second,
			DisableCompression:  true,
		}
		clients = append(clients, &http.Client{Transport: tr})
	case "h3":
		for i := 0; i < *h3conns; i++ {
			rt := &http3.RoundTripper{
				TLSClientConfig:    &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h3"}},
				DisableCompression: true,
				QuicConfig: &quic.Config{
					MaxIncomingStreams:         8192,
					MaxIdleTimeout:             300 * time.Second,
					MaxStreamReceiveWindow:     16 << 20,
					MaxConnectionReceiveWindow: 64 << 20,
					KeepAlivePeriod:            10 * time.Second,
				},
			}
			closers = append(closers, rt)
			clients = append(clients, &http.Client{Transport: rt})
		}
	default:
		log.Fatalf("unknown --proto %q", *proto)
	}

	start := time.Now().Add(time.Duration(*warmup * float64(time.Second)))
	end := start.Add(time.Duration(*dur * float64(time.Second)))
	ctx, cancel := context.WithDeadline(context.Background(), end)
	defer cancel()
	groupGap := *itl / 2
	if groupGap < 1 {
		groupGap = 1
	}

	results := make([]*stats, *conc)
	var wg sync.WaitGroup
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			st := &stats{}
			results[w] = st
			client := clients[w%len(clients)]
			buf := make([]byte, 64<<10)
			for ctx.Err() == nil {
				rctx, rcancel := context.WithTimeout(ctx, time.Duration(*timeout*float64(time.Second)))
				req, _ := http.NewRequestWithContext(rctx, "POST", *url, bytes.NewReader(body))
				req.Header = headers.Clone()
				req.ContentLength = int64(len(body))
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					rcancel()
					if ctx.Err() != nil {
						break
					}
					if time.Now().Before(start) {
						continue // warm-up: not measured
					}
					st.errors++
					if st.errSample == "" {
						st.errSample = err.Error()
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				isSSE := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
				var events, groups int64
				var first, last time.Time
				var gaps []float64
				prevNL := false
				var rerr error
				for {
					n, e := resp.Body.Read(buf)
					if n > 0 {
						st.bytesIn += int64(n)
						if isSSE {
							c := int64(0)
							chunk := buf[:n]
							if prevNL && chunk[0] == '\n' {
								c++
							}
							c += int64(bytes.Count(chunk, []byte("\n\n")))
							prevNL = chunk[n-1] == '\n'
							if c > 0 {
								now := time.Now()
								if first.IsZero() {
									first = now
									groups = 1
								} else {
									g := ms(now.Sub(last))
									gaps = append(gaps, g)
									if g >= groupGap {
										groups++
									}
								}
								last = now
								events += c
							}
						}
					}
					if e != nil {
						if e != io.EOF {
							rerr = e
						}
						break
					}
				}
				resp.Body.Close()
				rcancel()
				t1 := time.Now()
				if rerr != nil && ctx.Err() != nil {
					break // cut off by the end of the run: not counted
				}
				if t1.Before(start) {
					continue // warm-up: not measured
				}
				if rerr != nil {
					st.errors++
					if st.errSample == "" {
						st.errSample = rerr.Error()
					}
					continue
				}
				if resp.StatusCode != 200 {
					st.statusErrs++
					if st.errSample == "" {
						st.errSample = fmt.Sprintf("HTTP %d", resp.StatusCode)
					}
					continue
				}
				st.requests++
				st.lat = append(st.lat, ms(t1.Sub(t0)))
				if isSSE {
					st.streams++
					st.events += events
					st.gap = append(st.gap, gaps...)
					if !first.IsZero() {
						st.ttft = append(st.ttft, ms(first.Sub(t0)))
					}
					if *expectEvents > 0 && events < int64(*expectEvents) {
						st.incomplete++
					}
					if *expectWrites > 0 {
						if groups > int64(*expectWrites) {
							groups = int64(*expectWrites)
						}
						st.groups += groups
						st.expectedGroups += int64(*expectWrites)
					}
				}
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if elapsed > *dur+0.05 {
		elapsed = *dur
	}
	for _, c := range closers {
		c.Close()
	}
	all := &stats{}
	for _, r := range results {
		all.merge(r)
	}
	out := map[string]interface{}{
		"generator":          "peer-loadgen",
		"proto":              *proto,
		"concurrency":        *conc,
		"duration_s":         math.Round(elapsed*1000) / 1000,
		"requests":           all.requests,
		"errors":             all.errors + all.statusErrs,
		"transport_errors":   all.errors,
		"status_errors":      all.statusErrs,
		"rps":                math.Round(float64(all.requests)/elapsed*100) / 100,
		"latency_ms":         summarize(all.lat),
		"ttft_ms":            summarize(all.ttft),
		"gap_ms":             summarize(all.gap),
		"streams":            all.streams,
		"incomplete_streams": all.incomplete,
		"events":             all.events,
		"bytes_in":           all.bytesIn,
	}
	if all.expectedGroups > 0 {
		out["arrival_fidelity"] = math.Round(float64(all.groups)/float64(all.expectedGroups)*1000) / 1000
	}
	if *expectEvents > 0 && all.streams > 0 {
		out["fidelity"] = math.Round(float64(all.events)/float64(all.streams*int64(*expectEvents))*1000) / 1000
	}
	if all.errSample != "" {
		out["error_sample"] = all.errSample
	}
	enc, _ := json.MarshalIndent(out, "", " ")
	if *jsonOut != "" {
		if err := os.WriteFile(*jsonOut, enc, 0o644); err != nil {
			log.Fatal(err)
		}
	} else {
		os.Stdout.Write(append(enc, '\n'))
	}
}
