package cloudformation

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7"
	ignv34 "github.com/coreos/ignition/v2/config/v3_4"
	"gopkg.in/yaml.v3"

	"github.com/berthproject/berth/units"
)

var update = flag.Bool("update", false, "regenerate the Ignition blocks of berth.yaml")

const templatePath = "berth.yaml"

// placeholders are what CloudFormation's Fn::Sub fills in the user data.
func ignitionOptions() units.IgnitionOptions {
	return units.IgnitionOptions{BerthURL: "${BerthSource}", BerthHash: "${BerthHash}", EtcdEndpoints: "${EtcdEndpoints}", Stack: "${AWS::StackName}",
		Region: "${AWS::Region}", EtcdCluster: "${EtcdCluster}", RouterAdmin: "0.0.0.0:9080", PKIPrefix: "/berth/${AWS::StackName}", ACME: true}
}

// concrete are example values of the placeholders, for validation.
var concrete = strings.NewReplacer("${BerthSource}", "s3://berth-example-com-123456789012-eu-west-1/berth-linux-amd64-0123456789abcdef",
	"${BerthHash}", "sha512-"+strings.Repeat("0123456789abcdef", 8), "${EtcdEndpoints}", "https://10.0.1.11:2379,https://10.0.2.11:2379",
	"${AWS::StackName}", "berth-test", "${AWS::Region}", "eu-west-1", "${EtcdCluster}", "etcd1=https://10.0.1.11:2380,etcd2=https://10.0.2.11:2380")

var reBlock = regexp.MustCompile(`(?s)( *)# BEGIN ignition (\w+)[^\n]*\n.*?# END ignition (\w+)\n`)

// fill replaces each marked block with the role's Ignition config.
func fill(t *testing.T, tmpl []byte) []byte {
	t.Helper()
	return reBlock.ReplaceAllFunc(tmpl, func(block []byte) []byte {
		m := reBlock.FindSubmatch(block)
		indent, role := string(m[1]), string(m[2])
		cfg, err := units.Ignition(role, ignitionOptions())
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s# BEGIN ignition %s (generated: go test ./cloudformation -update)\n", indent, role)
		for _, line := range strings.Split(string(cfg), "\n") {
			b.WriteString(indent + line + "\n")
		}
		fmt.Fprintf(&b, "%s# END ignition %s\n", indent, role)
		return []byte(b.String())
	})
}

func TestIgnitionBlocksAreCurrent(t *testing.T) {
	tmpl, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	want := fill(t, tmpl)
	if *update {
		if err := os.WriteFile(templatePath, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(tmpl, want) {
		t.Fatal("berth.yaml's Ignition blocks differ from what berth generates: run go test ./cloudformation -update")
	}
}

// userData returns the Ignition JSON of a role as written in the template
// (between the markers, without the comment lines).
func userData(t *testing.T, tmpl []byte, role string) string {
	t.Helper()
	for _, m := range reBlock.FindAllSubmatch(tmpl, -1) {
		if string(m[2]) != role {
			continue
		}
		var lines []string
		for _, l := range strings.Split(string(m[0]), "\n") {
			if s := strings.TrimSpace(l); s != "" && !strings.HasPrefix(s, "#") {
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "\n")
	}
	t.Fatalf("no ignition block for %s", role)
	return ""
}

func TestIgnitionValidates(t *testing.T) {
	tmpl, _ := os.ReadFile(templatePath)
	for _, role := range []string{units.RoleServer, units.RoleWorker} {
		t.Run(role, func(t *testing.T) {
			raw := concrete.Replace(userData(t, tmpl, role))
			if strings.Contains(raw, "${") {
				t.Fatalf("placeholder left after substitution: %s", raw[strings.Index(raw, "${"):][:40])
			}
			cfg, report, err := ignv34.Parse([]byte(raw))
			if err != nil || len(report.Entries) > 0 {
				t.Fatalf("ignition: %v\n%s", err, report.String())
			}
			enabled := map[string]bool{}
			for _, u := range cfg.Systemd.Units {
				if u.Enabled != nil && *u.Enabled {
					enabled[u.Name] = true
				}
			}
			for _, u := range []string{"berth-router.socket", "berth-dnsd.socket", "berth-agent.service", "berth-passivate.timer"} {
				if !enabled[u] {
					t.Errorf("%s not enabled", u)
				}
			}
			if role == units.RoleServer && !enabled["etcd-member.service"] {
				t.Error("servers must enable etcd-member")
			}
			files := map[string]bool{}
			env := ""
			for _, f := range cfg.Storage.Files {
				files[f.Path] = true
				if f.Path == "/opt/bin/berth" {
					if f.Contents.Source == nil || !strings.HasPrefix(*f.Contents.Source, "s3://") ||
						f.Contents.Verification.Hash == nil || !strings.HasPrefix(*f.Contents.Verification.Hash, "sha512-") {
						t.Errorf("/opt/bin/berth must come from the stack's bucket, verified: %+v", f.Contents)
					}
				}
				if f.Path == "/etc/berth/berth.env" && f.Contents.Source != nil {
					env, _ = url.PathUnescape(strings.TrimPrefix(*f.Contents.Source, "data:,"))
				}
			}
			if !files["/opt/bin/berth"] || !files["/etc/berth/berth.env"] {
				t.Errorf("files: %v", files)
			}
			// berth fleet: every agent has its role as metadata; the servers
			// are the scheduler's candidates.
			if !strings.Contains(env, "BERTH_METADATA=role="+role+"\n") ||
				strings.Contains(env, "BERTH_SCHEDULER=true") != (role == units.RoleServer) {
				t.Errorf("berth.env of a %s:\n%s", role, env)
			}
		})
	}
}

func TestTemplateParsesWithGoformation(t *testing.T) {
	tmpl, err := goformation.Open(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ServerGroup", "WorkerGroup", "LoadBalancer", "DomainRecord", "WildcardRecord", "EtcdInterface1"} {
		if _, ok := tmpl.Resources[name]; !ok {
			t.Errorf("resource %s missing", name)
		}
	}
	if sg, err := tmpl.GetAutoScalingAutoScalingGroupWithName("ServerGroup"); err != nil || sg.LaunchTemplate == nil {
		t.Errorf("ServerGroup: %v", err)
	}
	// Both roles fetch the binary from the stack's bucket with their
	// instance role, which may read that one object and nothing else.
	for _, name := range []string{"ServerLaunchTemplate", "WorkerLaunchTemplate"} {
		lt, err := tmpl.GetEC2LaunchTemplateWithName(name)
		if err != nil || lt.LaunchTemplateData == nil || lt.LaunchTemplateData.IamInstanceProfile == nil {
			t.Errorf("%s has no instance profile: %v", name, err)
		}
	}
	// (goformation's typed roles drop the Fn::If that holds the policy:
	// read the YAML.)
	src, _ := os.ReadFile(templatePath)
	var doc struct {
		Resources map[string]any `yaml:"Resources"`
	}
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ServerRole", "WorkerRole"} {
		raw, err := json.Marshal(doc.Resources[name])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), `"s3:GetObject"`) || !strings.Contains(string(raw), `arn:${AWS::Partition}:s3:::${BerthBucket}/${BerthKey}`) ||
			strings.Contains(string(raw), `s3:*`) {
			t.Errorf("%s must read the berth object only: %s", name, raw)
		}
	}
	for _, out := range []string{"LoadBalancerDNSName", "ServerGroupName", "WorkerGroupName"} {
		if _, ok := tmpl.Outputs[out]; !ok {
			t.Errorf("output %s missing", out)
		}
	}
}

var pseudo = map[string]bool{"AWS::StackName": true, "AWS::Region": true, "AWS::AccountId": true, "AWS::StackId": true,
	"AWS::Partition": true, "AWS::URLSuffix": true, "AWS::NoValue": true}

var reSubVar = regexp.MustCompile(`\$\{([^}!]+)\}`)

// TestReferences checks every Ref, Fn::GetAtt, DependsOn, Condition and
// Fn::Sub variable against the parameters, resources and conditions, and
// that no logical id is defined twice (yaml.v3 refuses duplicate keys).
func TestReferences(t *testing.T) {
	raw, _ := os.ReadFile(templatePath)
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("berth.yaml: %v (a duplicate logical id is one cause)", err)
	}
	var top map[string]any
	if err := yaml.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	section := func(name string) map[string]any { m, _ := top[name].(map[string]any); return m }
	params, resources, conditions := section("Parameters"), section("Resources"), section("Conditions")
	known := func(name string) bool { return params[name] != nil || resources[name] != nil || pseudo[name] }
	var walk func(v any, subVars map[string]bool)
	walk = func(v any, subVars map[string]bool) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				switch k {
				case "Ref":
					if s, _ := val.(string); !known(s) {
						t.Errorf("Ref to unknown %q", val)
					}
				case "Fn::GetAtt":
					if l, _ := val.([]any); len(l) != 2 || resources[fmt.Sprint(l[0])] == nil {
						t.Errorf("Fn::GetAtt of unknown resource: %v", val)
					}
				case "DependsOn":
					deps, ok := val.([]any)
					if !ok {
						deps = []any{val}
					}
					for _, d := range deps {
						if resources[fmt.Sprint(d)] == nil {
							t.Errorf("DependsOn unknown %v", d)
						}
					}
				case "Condition":
					if s, ok := val.(string); ok && conditions[s] == nil {
						t.Errorf("unknown condition %q", s)
					}
				case "Fn::If":
					if l, _ := val.([]any); len(l) != 3 || conditions[fmt.Sprint(l[0])] == nil {
						t.Errorf("Fn::If on unknown condition: %v", val)
					}
				case "Fn::Sub":
					str, vars := "", map[string]bool{}
					switch s := val.(type) {
					case string:
						str = s
					case []any:
						str, _ = s[0].(string)
						if m, ok := s[1].(map[string]any); ok {
							for name := range m {
								vars[name] = true
							}
							walk(m, subVars)
						}
					}
					for _, m := range reSubVar.FindAllStringSubmatch(str, -1) {
						name := strings.SplitN(m[1], ".", 2)[0]
						if !known(name) && !vars[name] {
							t.Errorf("Fn::Sub references unknown ${%s}", m[1])
						}
					}
					continue
				}
				walk(val, subVars)
			}
		case []any:
			for _, e := range x {
				walk(e, subVars)
			}
		}
	}
	walk(map[string]any{"Resources": resources, "Outputs": top["Outputs"], "Conditions": conditions}, nil)
}

// TestCfnLint runs cfn-lint (the Python one, or npm's) on the template.
func TestCfnLint(t *testing.T) {
	bin, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Fatal("cfn-lint is needed (bin/test installs it)")
	}
	out, err := exec.Command(bin, templatePath).CombinedOutput()
	if err != nil {
		// npm's cfn-lint takes a "validate" verb.
		if out2, err2 := exec.Command(bin, "validate", templatePath).CombinedOutput(); err2 == nil {
			return
		} else {
			t.Fatalf("cfn-lint: %v\n%s\n%s", err, out, out2)
		}
	}
}
