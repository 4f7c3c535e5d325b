package agent

import (
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berthproject/berth/internal/dockerapi"
)

// fakeEngine speaks the Docker Engine API on a unix socket: the container
// list, inspect and a streaming event feed. It stands in for the engine,
// which does not run on these machines.
type fakeEngine struct {
	mu         sync.Mutex
	containers map[string]*dockerapi.Container
	subs       []chan dockerapi.Event
	socket     string
	srv        *http.Server
}

func newFakeEngine(t *testing.T) *fakeEngine {
	t.Helper()
	f := &fakeEngine{containers: map[string]*dockerapi.Container{}, socket: filepath.Join(t.TempDir(), "docker.sock")}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containers/json", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		out := []dockerapi.Summary{}
		for _, c := range f.containers {
			if c.State.Running {
				out = append(out, dockerapi.Summary{ID: c.ID, Names: []string{c.Name}, Image: c.Config.Image, State: "running", Labels: c.Config.Labels})
			}
		}
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /containers/{id}/json", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		c := f.containers[r.PathValue("id")]
		f.mu.Unlock()
		if c == nil {
			http.Error(w, `{"message":"No such container"}`, http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(c)
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Query().Get("filters"), "container") {
			http.Error(w, "want a container filter", http.StatusBadRequest)
			return
		}
		ch := make(chan dockerapi.Event, 16)
		f.mu.Lock()
		f.subs = append(f.subs, ch)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case ev := <-ch:
				json.NewEncoder(w).Encode(ev)
				w.(http.Flusher).Flush()
			}
		}
	})
	l, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = &http.Server{Handler: mux}
	go f.srv.Serve(l)
	t.Cleanup(func() { f.srv.Close() })
	return f
}

func (f *fakeEngine) emit(id, action string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := dockerapi.Event{Type: "container", Action: action}
	ev.Actor.ID = id
	for _, s := range f.subs {
		s <- ev
	}
}

// run adds a running container and emits its start event.
func (f *fakeEngine) run(id, name, image string, env []string, labels map[string]string, ports map[string]string) {
	c := &dockerapi.Container{ID: id, Name: "/" + name}
	c.Config.Image, c.Config.Env, c.Config.Labels = image, env, labels
	c.Config.ExposedPorts = map[string]struct{}{}
	c.NetworkSettings.IPAddress = "172.17.0.2"
	c.NetworkSettings.Ports = map[string][]dockerapi.PortBinding{}
	for cp, hp := range ports {
		c.Config.ExposedPorts[cp] = struct{}{}
		c.NetworkSettings.Ports[cp] = []dockerapi.PortBinding{{HostIP: "0.0.0.0", HostPort: hp}}
	}
	c.State.Running = true
	f.mu.Lock()
	f.containers[id] = c
	f.mu.Unlock()
	f.emit(id, "start")
}

// die stops a container and emits die (unless silent, as a missed event).
func (f *fakeEngine) die(id string, silent bool) {
	f.mu.Lock()
	if c := f.containers[id]; c != nil {
		c.State.Running = false
	}
	f.mu.Unlock()
	if !silent {
		f.emit(id, "die")
	}
}
