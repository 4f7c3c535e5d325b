package units

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"

	"github.com/berthproject/berth/internal/spec"
)

var update = flag.Bool("update", false, "rewrite golden files")

func renderExample(t *testing.T, name string) []File {
	t.Helper()
	apps, err := spec.ParseFile(filepath.Join("../examples", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := Render(apps[0], Options{})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func allExamples(t *testing.T) []File {
	t.Helper()
	var files []File
	for _, ex := range []string{"paas-monitor", "multi-port", "demo-exec", "secrets"} {
		files = append(files, renderExample(t, ex)...)
	}
	p, err := Platform(Options{})
	if err != nil {
		t.Fatal(err)
	}
	return append(files, p...)
}

func TestGolden(t *testing.T) {
	for _, f := range allExamples(t) {
		t.Run(f.Name, func(t *testing.T) {
			golden := filepath.Join("testdata", "golden", f.Name)
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, f.Content, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./units -update)", err)
			}
			if !bytes.Equal(f.Content, want) {
				t.Errorf("%s differs from %s:\n%s", f.Name, golden, f.Content)
			}
		})
	}
}

// TestSystemdVerify runs systemd-analyze verify on every rendered unit.
func TestSystemdVerify(t *testing.T) {
	if err := Verify(context.Background(), allExamples(t)); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyCatchesBadUnits proves that Verify is strict: a unit with an
// unknown key fails it.
func TestVerifyCatchesBadUnits(t *testing.T) {
	bad := File{Name: "bad.service", Content: []byte("[Unit]\nDescriptio=x\n[Service]\nExecStart=/bin/x\n")}
	err := Verify(context.Background(), []File{bad})
	if err == nil || !strings.Contains(err.Error(), "Unknown key") {
		t.Fatalf("got %v, want an Unknown key failure", err)
	}
}

func options(t *testing.T, f File) []*unit.UnitOption {
	t.Helper()
	opts, err := unit.DeserializeOptions(bytes.NewReader(f.Content))
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

func values(opts []*unit.UnitOption, section, name string) []string {
	var out []string
	for _, o := range opts {
		if o.Section == section && o.Name == name {
			out = append(out, o.Value)
		}
	}
	return out
}

var instanceSpecifiers = map[byte]string{'p': "app", 'i': "7"}

// hostile values: each must reach the process byte for byte.
var hostile = []string{
	"50%", "%i", "%%", "$HOME", "${HOME}", "$$", "a b", "  lead", "trail ", `"quoted"`, "it's", `back\slash`,
	`\n`, "tab\there", "ünïcødé ✓", "é", ";", `\;`, "-dash", "", "\x01ctl\x7f", "'", `"`, `\`, "a;b", "#hash", "x=y",
}

func TestHostileValuesRoundTrip(t *testing.T) {
	for _, runtime := range []string{spec.RuntimeDocker, spec.RuntimePodman, spec.RuntimeExec} {
		t.Run(runtime, func(t *testing.T) {
			a := &spec.App{APIVersion: spec.APIVersion, Name: "app", Runtime: runtime, Env: map[string]string{}}
			if runtime == spec.RuntimeExec {
				a.Command = []string{"/usr/bin/env"}
			} else {
				a.Image = "busybox:1"
			}
			a.Args = hostile
			for i, v := range hostile {
				a.Env[fmt.Sprintf("V%d", i)] = v
			}
			a.SetDefaults()
			if err := a.Validate(); err != nil {
				t.Fatal(err)
			}
			files, err := Render(a, Options{})
			if err != nil {
				t.Fatal(err)
			}
			opts := options(t, files[0])
			start := values(opts, "Service", "ExecStart")
			if len(start) != 1 {
				t.Fatalf("got %d ExecStart lines, want 1", len(start))
			}
			argv, err := SplitExec(start[0], instanceSpecifiers)
			if err != nil {
				t.Fatalf("ExecStart does not parse: %v\n%s", err, start[0])
			}
			if !slices.Equal(argv[len(argv)-len(hostile):], hostile) {
				t.Errorf("args: got %q, want %q", argv[len(argv)-len(hostile):], hostile)
			}
			env := map[string]string{}
			if runtime == spec.RuntimeExec {
				for _, line := range values(opts, "Service", "Environment") {
					words, err := SplitEnvironment(line, instanceSpecifiers)
					if err != nil {
						t.Fatalf("Environment=%s: %v", line, err)
					}
					for _, w := range words {
						k, v, _ := strings.Cut(w, "=")
						env[k] = v
					}
				}
			} else {
				for i := 0; i+1 < len(argv); i++ {
					if argv[i] == "-e" {
						k, v, _ := strings.Cut(argv[i+1], "=")
						env[k] = v
					}
				}
			}
			for k, want := range a.Env {
				if env[k] != want {
					t.Errorf("env %s: got %q, want %q", k, env[k], want)
				}
			}
			if env["BERTH_INSTANCE"] != "7" && runtime == spec.RuntimeExec {
				t.Errorf("BERTH_INSTANCE: got %q, want the instance specifier expanded", env["BERTH_INSTANCE"])
			}
		})
	}
}

func TestUnexpressibleRefused(t *testing.T) {
	for _, v := range []string{"a\nb", "a\x00b", "a\rb", string([]byte{0xff})} {
		if _, err := ExecArg(v); !errors.Is(err, ErrUnexpressible) {
			t.Errorf("ExecArg(%q): got %v, want ErrUnexpressible", v, err)
		}
		if _, err := EnvAssignment("K", v); !errors.Is(err, ErrUnexpressible) {
			t.Errorf("EnvAssignment(%q): got %v, want ErrUnexpressible", v, err)
		}
	}
}

func TestContainerUnitShape(t *testing.T) {
	opts := options(t, renderExample(t, "paas-monitor")[0])
	start, _ := SplitExec(values(opts, "Service", "ExecStart")[0], instanceSpecifiers)
	for _, want := range [][]string{{"--name", "app-7"}, {"-e", "SERVICE_NAME=paas-monitor"}, {"-e", "SERVICE_TAGS=http"}, {"-p", "1337/tcp"}, {"--stop-timeout", "10"}} {
		if i := slices.Index(start, want[0]); i < 0 || !slices.Contains(start[i:], want[1]) {
			t.Errorf("ExecStart %q lacks %q", start, want)
		}
	}
	stops := values(opts, "Service", "ExecStop")
	if len(stops) != 2 || !strings.Contains(stops[0], "hook drain") {
		t.Fatalf("ExecStop: got %q, want drain then docker stop", stops)
	}
	stop, _ := SplitExec(stops[1], instanceSpecifiers)
	if !slices.Equal(stop, []string{"/usr/bin/docker", "stop", "-t", "10", "app-7"}) {
		t.Errorf("ExecStop: got %q", stop)
	}
	want := map[string]string{"TimeoutStopSec": "15", "KillMode": "mixed", "SyslogIdentifier": "%p-%i", "Restart": "always"}
	for k, v := range want {
		if got := values(opts, "Service", k); len(got) != 1 || got[0] != v {
			t.Errorf("%s: got %q, want %q", k, got, v)
		}
	}
	if got := values(opts, "X-Fleet", "Conflicts"); len(got) != 1 || got[0] != "paas-monitor@*.service" {
		t.Errorf("X-Fleet Conflicts: got %q", got)
	}
	pre := values(opts, "Service", "ExecStartPre")
	if len(pre) < 3 || !strings.HasPrefix(pre[0], "-/usr/bin/docker rm -f") || !strings.Contains(pre[1], " pull ") {
		t.Errorf("ExecStartPre: got %q, want rm -f, then pull, then the hook (without a pullSecret)", pre)
	}
}

func TestExecRuntimeAllocatesOnePortPerPort(t *testing.T) {
	opts := options(t, renderExample(t, "demo-exec")[0])
	pre := values(opts, "Service", "ExecStartPre")
	argv, err := SplitExec(pre[0], instanceSpecifiers)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.Index(argv, "--alloc")
	if i < 0 || argv[i+1] != "PORT,PORT_DEMO" || slices.Contains(argv[i+2:], "--alloc") {
		t.Errorf("pre-start: got %q, want one --alloc PORT,PORT_DEMO", argv)
	}
}

func FuzzExecArgRoundTrip(f *testing.F) {
	for _, h := range hostile {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ExecArg(s)
		if err != nil {
			if !errors.Is(err, ErrUnexpressible) {
				t.Fatalf("ExecArg(%q): unexpected error %v", s, err)
			}
			return
		}
		argv, err := SplitExec("/bin/x "+q, instanceSpecifiers)
		if err != nil {
			t.Fatalf("ExecArg(%q) = %s does not parse: %v", s, q, err)
		}
		if len(argv) != 2 || argv[1] != s {
			t.Fatalf("ExecArg(%q) = %s parses as %q", s, q, argv)
		}
		e, err := EnvAssignment("K", s)
		if err != nil {
			t.Fatal(err)
		}
		words, err := SplitEnvironment(e, instanceSpecifiers)
		if err != nil || len(words) != 1 || words[0] != "K="+s {
			t.Fatalf("EnvAssignment(%q) = %s parses as %q (%v)", s, e, words, err)
		}
	})
}

// TestNodeUnitsVerify checks the server-only unit that Ignition installs.
func TestNodeUnitsVerify(t *testing.T) {
	b, err := templates.ReadFile("templates/node/berth-etcd-join.service")
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(context.Background(), []File{{Name: "berth-etcd-join.service", Content: b}}); err != nil {
		t.Fatal(err)
	}
}

// TestPassivateDriver: the passivation timer's service runs with the
// chosen driver, is Global under fleet like its timer, and an unknown
// driver is refused.
func TestPassivateDriver(t *testing.T) {
	for _, driver := range []string{"", "systemd", "fleet", "berth"} {
		files, err := Platform(Options{PassivateDriver: driver})
		if err != nil {
			t.Fatal(err)
		}
		want := "ExecStart=/opt/bin/berth passivate --driver " + cmp.Or(driver, "systemd") + "\n"
		for _, f := range files {
			if f.Name != "berth-passivate.service" {
				continue
			}
			if !bytes.Contains(f.Content, []byte(want)) || !bytes.Contains(f.Content, []byte("[X-Fleet]\nGlobal=true\n")) {
				t.Errorf("driver %q: got\n%s\nwant %q and [X-Fleet] Global=true", driver, f.Content, want)
			}
		}
	}
	if _, err := Platform(Options{PassivateDriver: "cron"}); err == nil || !strings.Contains(err.Error(), "systemd, fleet, berth") {
		t.Fatalf("an unknown driver: got %v, want an error naming the drivers", err)
	}
}

// TestGenerationUnitsRunSideBySide: a release after the first renders its
// own template ("<app>.<gen>@.service") whose instances have their own
// registry ids ("<gen>.%i"), env files and container names, so both
// releases' units can be loaded and run at once; systemd accepts it.
func TestGenerationUnitsRunSideBySide(t *testing.T) {
	for _, ex := range []string{"paas-monitor", "demo-exec"} {
		apps, err := spec.ParseFile("../examples/" + ex + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		a := apps[0]
		a.Generation = 3
		files, err := Render(a, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if want := a.Name + ".3@.service"; files[0].Name != want {
			t.Fatalf("%s generation 3: unit %s, want %s", ex, files[0].Name, want)
		}
		c := string(files[0].Content)
		for _, want := range []string{"BERTH_INSTANCE=3.%i", "--instance 3.%i"} {
			if !strings.Contains(c, want) {
				t.Errorf("%s: %q missing:\n%s", ex, want, c)
			}
		}
		if strings.Contains(c, "--instance %i") {
			t.Errorf("%s: an instance id without the generation:\n%s", ex, c)
		}
		if app, gen := AppOfPrefix(strings.TrimSuffix(files[0].Name, "@.service")); app != a.Name || gen != 3 {
			t.Errorf("AppOfPrefix(%s) = %s, %d", files[0].Name, app, gen)
		}
		if err := Verify(context.Background(), append(files, renderExample(t, ex)...)); err != nil {
			t.Errorf("systemd-analyze verify: %v", err)
		}
	}
	if app, gen := AppOfPrefix("web"); app != "web" || gen != 1 {
		t.Errorf("AppOfPrefix(web) = %s, %d", app, gen)
	}
}
