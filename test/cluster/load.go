package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// LoadResult counts a client load's requests.
type LoadResult struct {
	Total  int64    `json:"total"`
	Failed int64    `json:"failed"`
	Errors []string `json:"errors,omitempty"`
}

// runLoad sends requests round robin to targets for d with c clients and
// no client-side retry. It runs in the hub namespace (see TestMain).
func runLoad(targets []string, host string, d time.Duration, c int) LoadResult {
	// SIGTERM (Load.Stop) ends the load early.
	sctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sctx, d)
	defer cancel()
	var total, failed atomic.Int64
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil; i++ {
				req, _ := http.NewRequest("GET", "http://"+targets[i%len(targets)]+"/status", nil)
				req.Host = host
				total.Add(1)
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("%s: %s", targets[i%len(targets)], resp.Status)
					}
				}
				if err != nil && ctx.Err() == nil {
					failed.Add(1)
					mu.Lock()
					if len(errs) < 5 {
						errs = append(errs, err.Error())
					}
					mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	return LoadResult{Total: total.Load(), Failed: failed.Load(), Errors: errs}
}

// loadMain is the load generator's entry point in the hub namespace.
func loadMain() {
	d, _ := time.ParseDuration(os.Getenv("BERTH_LOAD_DURATION"))
	res := runLoad(strings.Split(os.Getenv("BERTH_LOAD_TARGETS"), ","), os.Getenv("BERTH_LOAD_HOST"), d, 4)
	json.NewEncoder(os.Stdout).Encode(res)
}

// Load is a client load running in the hub namespace.
type Load struct {
	cmd *exec.Cmd
	out strings.Builder
}

// StartLoad starts a load against the routers of nodes (default: every
// node) for d.
func (c *Cluster) StartLoad(d time.Duration, nodes ...*Node) *Load {
	if len(nodes) == 0 {
		nodes = c.Nodes
	}
	var targets []string
	for _, n := range nodes {
		targets = append(targets, n.IP+":80")
	}
	self, _ := os.Executable()
	l := &Load{cmd: exec.Command("ip", "netns", "exec", Hub, self)}
	l.cmd.Env = append(os.Environ(), "BERTH_LOADGEN=1", "BERTH_LOAD_TARGETS="+strings.Join(targets, ","),
		"BERTH_LOAD_HOST=demo.localhost", "BERTH_LOAD_DURATION="+d.String())
	l.cmd.Stdout = &l.out
	l.cmd.Stderr = os.Stderr
	if err := l.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { l.cmd.Process.Kill() }) // a failed scenario leaves no load running
	return l
}

// Stop ends the load now; Wait returns its result.
func (l *Load) Stop() { l.cmd.Process.Signal(syscall.SIGTERM) }

// Wait returns the load's result.
func (l *Load) Wait() (LoadResult, error) {
	var r LoadResult
	if err := l.cmd.Wait(); err != nil {
		return r, err
	}
	return r, json.Unmarshal([]byte(l.out.String()), &r)
}
