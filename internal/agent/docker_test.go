package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/berthproject/berth/internal/dockerapi"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
)

func TestServicesConventions(t *testing.T) {
	mk := func(image string, env []string, labels map[string]string, ports map[string]string) *dockerapi.Container {
		c := &dockerapi.Container{ID: "c1", Name: "/web-1"}
		c.Config.Image, c.Config.Env, c.Config.Labels = image, env, labels
		c.Config.ExposedPorts = map[string]struct{}{}
		c.NetworkSettings.Ports = map[string][]dockerapi.PortBinding{}
		c.NetworkSettings.IPAddress = "172.17.0.5"
		for cp, hp := range ports {
			c.Config.ExposedPorts[cp] = struct{}{}
			c.NetworkSettings.Ports[cp] = []dockerapi.PortBinding{{HostIP: "0.0.0.0", HostPort: hp}}
		}
		return c
	}
	cases := []struct {
		name     string
		c        *dockerapi.Container
		internal bool
		want     string // name id addr tags; ...
		errs     int
	}{
		{"image name", mk("mvanholsteijn/paas-monitor:latest", nil, nil, map[string]string{"1337/tcp": "49153"}), false,
			"paas-monitor node1:web-1:1337 10.0.0.9:49153 []", 0},
		{"SERVICE_NAME and tags", mk("x", []string{"SERVICE_NAME=shop", "SERVICE_TAGS=http,public"}, nil, map[string]string{"80/tcp": "8080"}), false,
			"shop node1:web-1:80 10.0.0.9:8080 [http public]", 0},
		{"labels win over env", mk("x", []string{"SERVICE_NAME=env"}, map[string]string{"SERVICE_NAME": "label"}, map[string]string{"80/tcp": "8080"}), false,
			"label node1:web-1:80 10.0.0.9:8080 []", 0},
		{"per-port names, ids and tags", mk("x", []string{"SERVICE_80_NAME=web", "SERVICE_9090_NAME=metrics", "SERVICE_9090_TAGS=prom", "SERVICE_80_ID=custom"}, nil,
			map[string]string{"80/tcp": "8080", "9090/tcp": "9091"}), false,
			"web custom 10.0.0.9:8080 []; metrics node1:web-1:9090 10.0.0.9:9091 [prom]", 0},
		{"several ports, one name", mk("redis:7", nil, nil, map[string]string{"6379/tcp": "1", "16379/tcp": "2"}), false,
			"redis-16379 node1:web-1:16379 10.0.0.9:2 []; redis-6379 node1:web-1:6379 10.0.0.9:1 []", 0},
		{"ignore all", mk("x", []string{"SERVICE_IGNORE=1"}, nil, map[string]string{"80/tcp": "1"}), false, "", 0},
		{"ignore one port", mk("x", []string{"SERVICE_80_IGNORE=yes"}, nil, map[string]string{"80/tcp": "1", "81/tcp": "2"}), false, "x-81 node1:web-1:81 10.0.0.9:2 []", 0},
		{"internal address", mk("x", nil, nil, map[string]string{"80/tcp": "8080"}), true, "x node1:web-1:80 172.17.0.5:80 []", 0},
		{"malformed name skipped", mk("x", []string{"SERVICE_NAME=Not Valid!"}, nil, map[string]string{"80/tcp": "1"}), false, "", 1},
		{"unpublished port", mk("x", nil, nil, nil), false, "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			svcs, errs := Services(c.c, "node1", "10.0.0.9", c.internal)
			var got []string
			for _, s := range svcs {
				got = append(got, strings.Join([]string{s.Name, s.ID, s.Addr, strings.Replace(strings.Trim(strings.Join([]string{"[", strings.Join(s.Tags, " "), "]"}, ""), " "), "[ ]", "[]", 1)}, " "))
			}
			if strings.Join(got, "; ") != c.want || len(errs) != c.errs {
				t.Errorf("got %q (errors %v), want %q (%d errors)", strings.Join(got, "; "), errs, c.want, c.errs)
			}
		})
	}
}

func TestDockerRegistrar(t *testing.T) {
	engine := newFakeEngine(t)
	_, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	log, _ := test.NewNullLogger()
	owner := registry.NewLeaseOwner(cli, cli, 5*time.Second, log)
	cache := registry.NewCache(cli, cli, registry.CacheConfig{Keys: k}, log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go owner.Run(ctx)
	go cache.Run(ctx)
	<-cache.Synced()

	// A record a previous agent left for a container that is gone.
	stale, val, _ := registry.InstanceKV(k, &registry.Instance{App: "old", ID: "node1:gone:80", Addr: "10.0.0.9:1", Node: "node1", Unit: "docker:gone", State: registry.StateUp})
	cli.Put(ctx, stale, val)
	// A container running before the agent starts.
	engine.run("c0", "early", "nginx:1.27", []string{"SERVICE_TAGS=http"}, nil, map[string]string{"80/tcp": "32768"})

	d := &Docker{API: dockerapi.New(engine.socket), Reg: owner, Keys: k, Node: "node1", IP: "10.0.0.9", Resync: 300 * time.Millisecond, Log: log}
	go d.Run(ctx, cache.Snapshot)

	has := func(app string, n int) func() bool {
		return func() bool { return len(cache.Snapshot().Live(app)) == n }
	}
	eventually(t, "the early container registered", has("nginx", 1))
	eventually(t, "the stale record removed", func() bool { return len(cache.Snapshot().Instances["old"]) == 0 })

	engine.run("c1", "web-1", "x", []string{"SERVICE_NAME=web"}, nil, map[string]string{"80/tcp": "32769"})
	engine.run("c2", "web-2", "x", []string{"SERVICE_NAME=web"}, nil, map[string]string{"80/tcp": "32770"})
	engine.run("c3", "skipme", "x", []string{"SERVICE_IGNORE=true"}, nil, map[string]string{"80/tcp": "32771"})
	engine.run("c4", "unit", "x", nil, map[string]string{"berth.app": "web"}, map[string]string{"80/tcp": "32772"})
	eventually(t, "two web containers", has("web", 2))
	if in := cache.Snapshot().Instances["web"]["node1:web-1:80"]; in == nil || in.Addr != "10.0.0.9:32769" || in.Node != "node1" {
		t.Fatalf("web-1 record: %+v", in)
	}
	if len(cache.Snapshot().Instances["x"]) != 0 {
		t.Fatal("an ignored container or a berth unit's container was registered")
	}
	engine.die("c1", false)
	eventually(t, "web-1 deregistered on die", has("web", 1))
	// A missed event: the resync takes the engine as the truth.
	engine.die("c2", true)
	eventually(t, "web-2 removed by the resync", has("web", 0))
}

func TestDockerEngineMissingIsRetried(t *testing.T) {
	log, hook := test.NewNullLogger()
	k, _ := registry.NewKeys("")
	d := &Docker{API: dockerapi.New("/nonexistent/docker.sock"), Keys: k, Node: "n", IP: "127.0.0.1", Log: log}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := d.Run(ctx, func() *registry.Snapshot { return &registry.Snapshot{} }); err != context.DeadlineExceeded {
		t.Fatalf("Run returned %v, want to keep retrying until the context ends", err)
	}
	if e := hook.LastEntry(); e == nil || !strings.Contains(e.Message, "docker engine unavailable") {
		t.Fatalf("no clear warning: %+v", e)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
