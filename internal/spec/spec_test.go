package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = "apiVersion: berth/v1\nname: web\nimage: nginx:1.27\n"

func TestExamplesParse(t *testing.T) {
	paths, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(paths) < 3 {
		t.Fatalf("want at least 3 examples, got %v (%v)", paths, err)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			if _, err := ParseFile(p); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	apps, err := Parse([]byte(minimal + "ports: [{container: 80}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := apps[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"runtime", a.Runtime, RuntimeDocker},
		{"instances", a.Instances, 1},
		{"version", a.Version, "0.0.0"},
		{"pull", a.Pull, PullMissing},
		{"port name", a.Ports[0].Name, "web"},
		{"port protocol", a.Ports[0].Protocol, "tcp"},
		{"health", a.Health != nil && a.Health.TCP, true},
		{"stop timeout", a.StopTimeout.D(), DefaultStopTimeout},
		{"restart", a.Restart.Policy, RestartAlways},
		{"policy", a.Routing.Policy, PolicyRoundRobin},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestBadInput(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // every substring must appear in the error
	}{
		{"unknown field", minimal + "imagee: x\n", []string{`unknown field "imagee"`, `did you mean "image"`}},
		{"snake case", minimal + "idle_timeout: 5m\n", []string{`did you mean "idleTimeout"`}},
		{"nested unknown", minimal + "ports: [{container: 80, hots: 8080}]\n", []string{"ports[0]", `did you mean "host"`}},
		{"wrong type", minimal + "instances: three\n", []string{"instances: must be a whole number"}},
		{"wrong type list", minimal + "domains: a.example.com\n", []string{"domains: must be a list"}},
		{"missing image", "apiVersion: berth/v1\nname: web\n", []string{"image: missing"}},
		{"missing apiVersion", "name: web\nimage: x\n", []string{"apiVersion: missing"}},
		{"other apiVersion", "apiVersion: v1\nname: web\nimage: x\n", []string{`apiVersion: must be "berth/v1"`}},
		{"newer major", "apiVersion: berth/v2\nname: web\nimage: x\n", []string{"newer than this berth", "upgrade berth"}},
		{"duplicate port", minimal + "ports: [{container: 80}, {container: 80}]\n", []string{"ports[1]: duplicates ports[0] (80/tcp)"}},
		{"port range", minimal + "ports: [{container: 80}, {container: 70000}]\n", []string{"ports[1].container: must be 1..65535, got 70000"}},
		{"bad name", "apiVersion: berth/v1\nname: Web@App\nimage: x\n", []string{"name: \"Web@App\" is not a valid app name"}},
		{"bad duration", minimal + "idleTimeout: 5 minutes\n", []string{"idleTimeout:", "not a duration"}},
		{"negative duration", minimal + "stopTimeout: -5s\n", []string{"stopTimeout:", "negative"}},
		{"newline in env", minimal + "env: {A: \"x\\ny\"}\n", []string{"env.A: contains a line break"}},
		{"nul in arg", minimal + "args: [\"a\\0b\"]\n", []string{"args[0]: contains a NUL"}},
		{"bad env key", minimal + "env: {1A: x}\n", []string{`"1A" is not a valid variable name`}},
		{"bad domain", minimal + "domains: [\"http://x.com\"]\n", []string{"domains[0]"}},
		{"restart never triggers", minimal + "restart: {delay: 10s, burst: 5, interval: 30s}\n", []string{"restart.interval", "could never trigger"}},
		{"exec without command", "apiVersion: berth/v1\nname: web\nruntime: exec\n", []string{"command: runtime exec needs"}},
		{"bad runtime", minimal + "runtime: rkt\n", []string{"runtime: must be docker, podman or exec"}},
		{"two health checks", minimal + "ports: [{container: 80}]\nhealth: {http: /h, tcp: true}\n", []string{"health: set exactly one"}},
		{"active health without http", minimal + "ports: [{container: 80}]\nrouting: {activeHealth: true}\n", []string{"routing.activeHealth: needs an HTTP check", "set health.http"}},
		{"bad https", minimal + "routing: {https: always}\n", []string{"routing.https: must be both, redirect or only", `"always"`}},
		{"https contradicted", minimal + "routing: {https: only, httpsRedirect: true}\n", []string{"routing.httpsRedirect: contradicts routing.https"}},
		{"bad hsts", minimal + "routing: {hsts: 1 year}\n", []string{"routing.hsts:", "not a duration"}},
		{"not a mapping", "- a\n- b\n", []string{"must be a mapping"}},
		{"empty", "", []string{"no app spec found"}},
		{"bad yaml", "a: [\n", []string{"not valid YAML"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil {
				t.Fatalf("got no error, want one containing %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestEveryErrorAtOnce(t *testing.T) {
	_, err := Parse([]byte(minimal + "instances: 0\nports: [{container: 0}]\nruntime: docker\nresources: {memory: lots}\n"))
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("got %v, want Errors", err)
	}
	// instances: 0 is defaulted to 1, so: container and memory.
	if len(es) < 2 {
		t.Fatalf("got %d errors (%v), want at least 2", len(es), err)
	}
}

func TestNewerMajorIsSentinel(t *testing.T) {
	_, err := Parse([]byte("apiVersion: berth/v3\nname: a\nimage: b\n"))
	if !errors.Is(err, ErrNewerAPIVersion) {
		t.Fatalf("got %v, want ErrNewerAPIVersion", err)
	}
}

func TestMultiDocument(t *testing.T) {
	apps, err := Parse([]byte(minimal + "---\napiVersion: berth/v1\nname: api\nimage: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 2 || apps[1].Name != "api" {
		t.Fatalf("got %d apps, want 2 with the second named api", len(apps))
	}
	_, err = Parse([]byte(minimal + "---\napiVersion: berth/v1\nname: api\n"))
	if err == nil || !strings.Contains(err.Error(), "document 2") {
		t.Fatalf("got %v, want an error naming document 2", err)
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"image", "instances", "idleTimeout", "ports"}
	for in, want := range map[string]string{"imag": "image", "IdleTimeout": "idleTimeout", "idle-timeout": "idleTimeout", "zzzzzz": "", "port": "ports"} {
		if got := suggest(in, known); got != want {
			t.Errorf("suggest(%q): got %q, want %q", in, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"../../examples/paas-monitor.yaml", "../../examples/multi-port.yaml", "../../examples/demo-exec.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(minimal + "ports: &a [{container: 80}]\nenv: *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		apps, err := Parse(data)
		if err != nil {
			return
		}
		for _, a := range apps {
			// What Parse accepts must validate again after defaults.
			a.SetDefaults()
			if err := a.Validate(); err != nil {
				t.Fatalf("parsed spec does not validate: %v", err)
			}
		}
	})
}

func TestPlainHTTP(t *testing.T) {
	tests := []struct {
		name string
		r    Routing
		want string
	}{
		{"default", Routing{}, HTTPSBoth},
		{"older spelling", Routing{HTTPSRedirect: true}, HTTPSRedirect},
		{"only", Routing{HTTPS: HTTPSOnly}, HTTPSOnly},
		{"both spellings agree", Routing{HTTPS: HTTPSRedirect, HTTPSRedirect: true}, HTTPSRedirect},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.PlainHTTP(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	apps, err := Parse([]byte("apiVersion: berth/v1\nname: web\nimage: x\nrouting: {https: redirect, hsts: 8760h}\n"))
	if err != nil || len(apps) != 1 {
		t.Fatalf("Parse: %v", err)
	}
	if a := apps[0]; a.Routing.PlainHTTP() != HTTPSRedirect || a.Routing.HSTS.D() != 8760*time.Hour {
		t.Errorf("Parse: routing %+v", a.Routing)
	}
}

// TestEveryErrorWithLines: a spec with wrong types, an unknown field and
// invalid values reports all of them in one error, in file order, each
// with its line (the port range among them); a value nested in a bad one
// is not reported twice.
func TestEveryErrorWithLines(t *testing.T) {
	for _, c := range []struct {
		name, doc string
		want      []string
	}{
		{name: "yaml", doc: `apiVersion: berth/v1
name: Bad_Name
image: nginx
instances: -1
ports:
  - container: 70000
  - container: 80
    host: lots
idleTimeout: banana
helth: {}
health: {http: /h, interval: 1s, timeout: 1s}
`, want: []string{
			`line 2: name: "Bad_Name" is not a valid app name`,
			"line 4: instances: must be 1..1000, got -1",
			"line 6: ports[0].container: must be 1..65535, got 70000",
			`line 8: ports[1].host: must be a whole number, got "lots"`,
			`line 9: idleTimeout: "banana" is not a duration`,
			`line 10: unknown field "helth" (did you mean "health"?)`,
		}},
		{name: "no apiVersion", doc: "name: web\nimage: nginx\ninstances: 0\nports: [{container: 0}]\n", want: []string{
			`line 1: apiVersion: missing: add "apiVersion: berth/v1" at the top`,
			"line 4: ports[0].container: must be 1..65535, got 0",
		}},
		{name: "json", doc: `{
	"apiVersion": "berth/v1",
	"name": "web",
	"image": "nginx",
	"instances": 5000,
	"ports": [
		{"container": 0}
	],
	"stopTimeout": 7
}
`, want: []string{
			"line 5: instances: must be 1..1000, got 5000",
			"line 7: ports[0].container: must be 1..65535, got 0",
			`line 9: stopTimeout:`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc))
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("got %v, want Errors", err)
			}
			if len(es) != len(c.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(es), len(c.want), err)
			}
			for i, w := range c.want {
				if i < len(es) && !strings.HasPrefix(es[i].Error(), w) {
					t.Errorf("error %d: %q, want it to start with %q", i, es[i].Error(), w)
				}
			}
		})
	}
}

// TestParseFileListsProblems: several problems print one a line as
// FILE:LINE, the form editors jump to.
func TestParseFileListsProblems(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app.yaml")
	os.WriteFile(p, []byte(minimal+"instances: -1\nports: [{container: 70000}]\n"), 0o600)
	_, err := ParseFile(p)
	var es Errors
	if err == nil || !errors.As(err, &es) || !strings.Contains(err.Error(), "2 problems:\n  "+p+":") ||
		!strings.Contains(err.Error(), "ports[0].container: must be 1..65535, got 70000") {
		t.Fatalf("got %v", err)
	}
}

// TestEveryDocumentsErrors: problems in several documents of one file are
// all reported, each naming its document and line.
func TestEveryDocumentsErrors(t *testing.T) {
	_, err := Parse([]byte(minimal + "instances: -1\n---\napiVersion: berth/v1\nname: api\nports: [{container: 70000}]\n"))
	var es Errors
	if !errors.As(err, &es) || len(es) != 3 {
		t.Fatalf("got %v, want 3 problems", err)
	}
	for i, want := range []string{
		"document 1, line 4: instances: must be 1..1000, got -1",
		"document 2, line 6: image: missing",
		"document 2, line 8: ports[0].container: must be 1..65535, got 70000",
	} {
		if !strings.HasPrefix(es[i].Error(), want) {
			t.Errorf("problem %d: %q, want %q", i, es[i].Error(), want)
		}
	}
}
