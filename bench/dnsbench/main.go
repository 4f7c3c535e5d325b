// Command dnsbench measures berth's dnsd with dnsperf against a minimal
// miekg/dns server answering the same names from a map (the ceiling), in
// one run, and the propagation time from an etcd Put to the new answer.
//
//	go run ./bench/dnsbench -services 1000 -seconds 10
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/dnsd"
	"github.com/berthproject/berth/internal/etcdserver"
	"github.com/berthproject/berth/internal/registry"
)

func main() {
	services := flag.Int("services", 1000, "services to register (2 instances each)")
	seconds := flag.Int("seconds", 10, "dnsperf run length per target")
	inflight := flag.Int("inflight", 100, "queries in flight (dnsperf -q)")
	trials := flag.Int("trials", 100, "propagation trials")
	flag.Parse()
	if err := run(*services, *seconds, *inflight, *trials); err != nil {
		fmt.Fprintln(os.Stderr, "dnsbench:", err)
		os.Exit(1)
	}
}

func run(services, seconds, inflight, trials int) error {
	if _, err := exec.LookPath("dnsperf"); err != nil {
		return fmt.Errorf("needs dnsperf (apt-get install dnsperf)")
	}
	dir, _ := os.MkdirTemp("", "dnsbench-")
	defer os.RemoveAll(dir)
	srv, err := etcdserver.Start(filepath.Join(dir, "etcd"), 0)
	if err != nil {
		return err
	}
	defer srv.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}})
	if err != nil {
		return err
	}
	defer cli.Close()
	k, _ := registry.NewKeys("")
	ceiling := map[string][]dns.RR{}
	var ops []clientv3.Op
	for i := range services {
		app := fmt.Sprintf("svc%d", i)
		for j := range 2 {
			in := &registry.Instance{App: app, ID: fmt.Sprint(j), Addr: fmt.Sprintf("10.%d.%d.%d:%d", i/250, i%250, j+1, 8000+j), Node: "n1", State: registry.StateUp}
			key, val, _ := registry.InstanceKV(k, in)
			ops = append(ops, clientv3.OpPut(key, val))
			name := app + ".service.berth."
			ceiling[name+"/A"] = append(ceiling[name+"/A"], &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
				A: net.ParseIP(fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j+1))})
			ceiling[name+"/SRV"] = append(ceiling[name+"/SRV"], &dns.SRV{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 5},
				Priority: 1, Weight: 1, Port: uint16(8000 + j), Target: fmt.Sprintf("%s-%d.n1.node.berth.", app, j)})
		}
		if len(ops) >= 100 {
			if _, err := cli.Txn(context.Background()).Then(ops...).Commit(); err != nil {
				return err
			}
			ops = nil
		}
	}
	if len(ops) > 0 {
		cli.Txn(context.Background()).Then(ops...).Commit()
	}

	// The query file: A and SRV for every service, in turn.
	qf := filepath.Join(dir, "queries.txt")
	f, _ := os.Create(qf)
	w := bufio.NewWriter(f)
	for i := range services {
		fmt.Fprintf(w, "svc%d.service.berth A\nsvc%d.service.berth SRV\n", i, i)
	}
	w.Flush()
	f.Close()

	// berth dnsd, in-process, fed by the real watch cache.
	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	cache := registry.NewCache(cli, cli, registry.CacheConfig{Keys: k}, log)
	s, err := dnsd.New(dnsd.Config{}, cache, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go cache.Run(ctx)
	go s.Run(ctx)
	ls, err := dnsd.Listen("127.0.0.1:0")
	if err != nil {
		return err
	}
	go s.Serve(ctx, ls, nil)
	for !s.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	berthAddr := ls.UDP[0].LocalAddr().String()

	// The ceiling: a map lookup and nothing else.
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	ceil := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		m.Answer = ceiling[strings.ToLower(q.Name)+"/"+dns.TypeToString[q.Qtype]]
		w.WriteMsg(m)
	})}
	go ceil.ActivateAndServe()
	defer ceil.Shutdown()

	results := map[string][2]string{}
	for _, t := range []struct{ name, addr string }{{"ceiling", pc.LocalAddr().String()}, {"berth", berthAddr}, {"ceiling", pc.LocalAddr().String()}, {"berth", berthAddr}} {
		qps, lat, err := dnsperf(t.addr, qf, seconds, inflight)
		if err != nil {
			return err
		}
		fmt.Printf("%-8s %s qps, average latency %s s\n", t.name, qps, lat)
		results[t.name] = [2]string{qps, lat}
	}

	// Propagation: Put a new service, poll until dnsd answers it.
	c := &dns.Client{Timeout: time.Second}
	var d []time.Duration
	for i := range trials {
		app := fmt.Sprintf("new%d", i)
		key, val, _ := registry.InstanceKV(k, &registry.Instance{App: app, ID: "1", Addr: "10.200.0.1:80", State: registry.StateUp})
		start := time.Now()
		if _, err := cli.Put(context.Background(), key, val); err != nil {
			return err
		}
		q := new(dns.Msg)
		q.SetQuestion(app+".service.berth.", dns.TypeA)
		for {
			r, _, err := c.Exchange(q, berthAddr)
			if err == nil && len(r.Answer) == 1 {
				break
			}
		}
		d = append(d, time.Since(start))
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	fmt.Printf("propagation Put -> answer over %d trials: p50 %s, p99 %s\n", trials, d[len(d)/2], d[len(d)*99/100])
	return nil
}

var (
	reQPS = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	reLat = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`)
)

func dnsperf(addr, file string, seconds, inflight int) (string, string, error) {
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command("dnsperf", "-s", host, "-p", port, "-d", file, "-l", fmt.Sprint(seconds), "-q", fmt.Sprint(inflight)).CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("dnsperf: %v: %s", err, out)
	}
	q, l := reQPS.FindSubmatch(out), reLat.FindSubmatch(out)
	if q == nil || l == nil {
		return "", "", fmt.Errorf("dnsperf output not understood: %s", out)
	}
	return string(q[1]), string(l[1]), nil
}
