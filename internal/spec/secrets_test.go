package spec

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestSecretRefs(t *testing.T) {
	apps, err := Parse([]byte(minimal + "pullSecret: registry-auth\nenv: {DB_PASSWORD: \"secret:db-password\", MODE: prod, TOKEN: \"secret:api.token_2\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := apps[0]
	if got, want := a.SecretEnv(), map[string]string{"DB_PASSWORD": "db-password", "TOKEN": "api.token_2"}; !equalMaps(got, want) {
		t.Errorf("SecretEnv: got %v, want %v", got, want)
	}
	if got, want := a.LiteralEnv(), map[string]string{"MODE": "prod"}; !equalMaps(got, want) {
		t.Errorf("LiteralEnv: got %v, want %v", got, want)
	}
	if got, want := a.SecretNames(), []string{"api.token_2", "db-password", "registry-auth"}; !slices.Equal(got, want) {
		t.Errorf("SecretNames: got %v, want %v", got, want)
	}
	if !a.UsesSecrets() {
		t.Error("UsesSecrets: got false")
	}
	plain, _ := Parse([]byte(minimal + "env: {A: b}\n"))
	if plain[0].UsesSecrets() || len(plain[0].SecretNames()) != 0 {
		t.Error("an app without references uses secrets")
	}
}

func TestSecretBadInput(t *testing.T) {
	ecr := "apiVersion: berth/v1\nname: web\nimage: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:1\n"
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"empty name", minimal + "env: {A: \"secret:\"}\n", []string{"env.A:", "invalid secret name", "berth secret put web NAME"}},
		{"slash", minimal + "env: {A: \"secret:../x\"}\n", []string{"env.A:", `invalid secret name "../x"`}},
		{"space", minimal + "env: {A: \"secret:a b\"}\n", []string{"env.A:"}},
		{"too long", minimal + "env: {A: \"secret:" + strings.Repeat("a", 129) + "\"}\n", []string{"env.A:", "1-128"}},
		{"pull secret exec", "apiVersion: berth/v1\nname: web\nruntime: exec\ncommand: [/bin/web]\npullSecret: x\n", []string{"pullSecret: is for container runtimes"}},
		{"pull secret never", minimal + "pull: never\npullSecret: x\n", []string{"pullSecret: is unused with pull: never"}},
		{"pull secret name", minimal + "pullSecret: \"a/b\"\n", []string{"pullSecret:", "invalid secret name", "aws:ecr"}},
		{"ecr not ecr", minimal + "pullSecret: aws:ecr\n", []string{"pullSecret: aws:ecr logs in to Amazon ECR", `"nginx:1.27" is not in ECR`}},
		{"ecr typo", ecr + "pullSecret: aws:ecs\n", []string{"pullSecret:", "invalid secret name"}},
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
	if _, err := Parse([]byte(ecr + "pullSecret: aws:ecr\n")); err != nil {
		t.Errorf("an ECR image with aws:ecr: %v", err)
	}
}

func TestECRRegistry(t *testing.T) {
	for image, want := range map[string]string{
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:1":       "eu-west-1",
		"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/a/b@sha": "cn-north-1",
		"123456789012.dkr.ecr-fips.us-east-1.amazonaws.com/web":    "us-east-1",
		"nginx:1.27": "",
		"12345.dkr.ecr.eu-west-1.amazonaws.com/web":           "",
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil/w": "",
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com":        "",
	} {
		_, region, ok := ECRRegistry(image)
		if ok != (want != "") || region != want {
			t.Errorf("ECRRegistry(%q): got %q %v, want %q", image, region, ok, want)
		}
	}
}

// FuzzParseSecretRef: a value is a reference exactly when it starts with
// "secret:"; an accepted name is a safe key segment and file name.
func FuzzParseSecretRef(f *testing.F) {
	for _, s := range []string{"secret:db", "secret:", "secret:../../etc", "plain", "secret:a.b-c_d", "SECRET:x", "secret:a/b", "secret:.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		name, ref, err := ParseSecretRef(value)
		if ref != strings.HasPrefix(value, SecretPrefix) {
			t.Fatalf("%q: ref %v", value, ref)
		}
		if !ref && (err != nil || name != "") {
			t.Fatalf("%q: a literal gave name %q, err %v", value, name, err)
		}
		if ref && err == nil {
			if SecretPrefix+name != value {
				t.Fatalf("%q: name %q does not round-trip", value, name)
			}
			if name == "" || len(name) > MaxSecretName || strings.ContainsAny(name, "/\\\x00\n\r =:%$") || strings.Contains(name, "..") || name == "." {
				t.Fatalf("%q: accepted unsafe name %q", value, name)
			}
		}
		if ref && err != nil && !errors.Is(err, ErrSecretName) {
			t.Fatalf("%q: error %v is not ErrSecretName", value, err)
		}
	})
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
