// peer-quicgo: a quic-go 0.29 HTTP/3 server whose handler is a
// net/http/httputil.ReverseProxy to one HTTP/1.1 upstream (HTTP/3 downstream,
// HTTP/1.1 upstream with keep-alive), flushing every write so SSE events pass
// through as they arrive. A self-signed certificate is generated at start-up.
// The UDP port is written to --port-file. Run with GOMAXPROCS=1.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"

	"github.com/lucas-clemente/quic-go"
	"github.com/lucas-clemente/quic-go/http3"
)

func selfSigned() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "UDP listen address")
	upstream := flag.String("upstream", "", "upstream base URL, e.g. http://127.0.0.1:8000")
	portFile := flag.String("port-file", "", "write {\"api\":PORT} (UDP) here once listening")
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" {
		log.Fatalf("bad --upstream %q", *upstream)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.Transport = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	rp.ErrorLog = log.New(os.Stderr, "peer-quicgo: ", 0)
	conn, err := net.ListenPacket("udp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http3.Server{
		Handler:   rp,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{selfSigned()}, NextProtos: []string{"h3"}},
		QuicConfig: &quic.Config{
			MaxIncomingStreams:         8192,
			MaxIdleTimeout:             300 * time.Second,
			MaxStreamReceiveWindow:     16 << 20,
			MaxConnectionReceiveWindow: 64 << 20,
		},
	}
	if *portFile != "" {
		port := conn.LocalAddr().(*net.UDPAddr).Port
		if err := os.WriteFile(*portFile+".tmp", []byte(fmt.Sprintf("{\"api\":%d}\n", port)), 0o644); err != nil {
			log.Fatal(err)
		}
		if err := os.Rename(*portFile+".tmp", *portFile); err != nil {
			log.Fatal(err)
		}
	}
	log.Fatal(srv.Serve(conn))
}
