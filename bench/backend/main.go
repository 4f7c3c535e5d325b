// Command backend is the HTTP backend of the benchmarks: it answers every
// request with a small fixed body, keep-alive, as fast as Go's net/http can
// (over HTTPS with -tls-cert, as the direct baseline of the HTTPS run).
package main

import (
	"flag"
	"log"
	"net/http"
	"strconv"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:18081", "address")
	size := flag.Int("size", 64, "response body size")
	cert := flag.String("tls-cert", "", "serve HTTPS with this certificate (and -tls-key): the direct baseline of bench/router-https.sh")
	key := flag.String("tls-key", "", "key of -tls-cert")
	flag.Parse()
	body := make([]byte, *size)
	for i := range body {
		body[i] = 'x'
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/headers" { // what a proxy forwarded, for the script's check
			r.Header.Write(w)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	if *cert != "" {
		log.Fatal(http.ListenAndServeTLS(*addr, *cert, *key, h))
	}
	log.Fatal(http.ListenAndServe(*addr, h))
}
