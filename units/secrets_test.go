package units

import (
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"

	"github.com/berthproject/berth/internal/spec"
)

// TestRenderSecrets: secret references become hook arguments (names
// only); the exec runtime starts the app through berth hook exec, so
// neither the unit nor its other processes carry the values.
func TestRenderSecrets(t *testing.T) {
	cases := []struct {
		name, yaml string
		want, not  []string
	}{
		{"exec", "apiVersion: berth/v1\nname: api\nruntime: exec\ncommand: [/opt/bin/api, --serve]\nuser: \"1000:1000\"\nports: [{container: 8080}]\nenv: {MODE: prod, DB_PASSWORD: \"secret:db-password\"}\n",
			[]string{
				"ExecStartPre=+/opt/bin/berth hook pre-start --app api --instance %i --env-file /run/berth/api/%i.env --alloc PORT,PORT_API --secrets-dir /run/berth/secrets/%p@%i --secret DB_PASSWORD=db-password --owner 1000:1000\n",
				"ExecStart=/opt/bin/berth hook exec --env-file /run/berth/secrets/%p@%i/env -- /opt/bin/api --serve\n",
				"ExecStopPost=-+/opt/bin/berth hook post-stop --app api --instance %i --env-file /run/berth/api/%i.env --secrets-dir /run/berth/secrets/%p@%i\n",
				`Environment="MODE=prod"`, "User=1000\n",
			},
			[]string{"secret:", "Environment=\"DB_PASSWORD", "EnvironmentFile=-/run/berth/secrets"}},
		{"docker pull secret", "apiVersion: berth/v1\nname: web\nimage: registry.example.com/web:1\npull: always\npullSecret: reg\n",
			[]string{
				"ExecStartPre=+/opt/bin/berth hook pre-start --app web --instance %i --secrets-dir /run/berth/secrets/%p@%i --pull-secret reg --image registry.example.com/web:1\n",
				"ExecStartPre=/usr/bin/docker --config /run/berth/secrets/%p@%i pull registry.example.com/web:1\n",
			},
			[]string{"--env-file", "secret:"}},
		{"ecr", "apiVersion: berth/v1\nname: web\nimage: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:1\nruntime: podman\npullSecret: aws:ecr\n",
			[]string{
				"--pull-secret aws:ecr --image 123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:1\n",
				"ExecStartPre=-/usr/bin/podman pull --authfile /run/berth/secrets/%p@%i/config.json 123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:1\n",
			}, nil},
		{"docker env secret", "apiVersion: berth/v1\nname: web\nimage: nginx\nenv: {TOKEN: \"secret:tok\"}\n",
			[]string{
				"ExecStartPre=+/opt/bin/berth hook pre-start --app web --instance %i --secrets-dir /run/berth/secrets/%p@%i --secret TOKEN=tok\n",
				" --env-file /run/berth/secrets/%p@%i/env ",
			},
			[]string{"secret:", "podman", "--secret %p"}},
		// podman: a podman secret per variable, whose lookup reads the
		// env file; no --env-file, which would put the values in podman's
		// database.
		{"podman env secret", "apiVersion: berth/v1\nname: web\nimage: nginx\nruntime: podman\nenv: {TOKEN: \"secret:tok\", B_KEY: \"secret:b\"}\n",
			[]string{
				"ExecStartPre=+/opt/bin/berth hook pre-start --app web --instance %i --secrets-dir /run/berth/secrets/%p@%i --secret B_KEY=b --secret TOKEN=tok\n" +
					"ExecStartPre=-/usr/bin/podman secret rm %p-%i-B_KEY\n" +
					"ExecStartPre=-/usr/bin/podman secret rm %p-%i-TOKEN\n" +
					`ExecStartPre=/usr/bin/podman secret create --driver shell --driver-opts "store=cat >/dev/null,lookup=sed -n s/^B_KEY=//p /run/berth/secrets/%p@%i/env | tr -d '\\n',delete=true,list=true" %p-%i-B_KEY /run/berth/secrets/%p@%i/env` + "\n",
				" --secret %p-%i-B_KEY,type=env,target=B_KEY --secret %p-%i-TOKEN,type=env,target=TOKEN ",
				"ExecStopPost=-/usr/bin/podman rm -f %p-%i\nExecStopPost=-/usr/bin/podman secret rm %p-%i-B_KEY\nExecStopPost=-/usr/bin/podman secret rm %p-%i-TOKEN\n",
			},
			[]string{"secret:", "--env-file"}},
		{"no secrets", "apiVersion: berth/v1\nname: web\nimage: nginx\nenv: {A: b}\n",
			[]string{"ExecStartPre=/opt/bin/berth hook pre-start --app web --instance %i\n", "ExecStopPost=-/opt/bin/berth hook post-stop --app web --instance %i\n"},
			[]string{"secrets", "+/opt/bin/berth"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			apps, err := spec.Parse([]byte(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			files, err := Render(apps[0], Options{})
			if err != nil {
				t.Fatal(err)
			}
			text := string(files[0].Content)
			for _, w := range c.want {
				if !strings.Contains(text, w) {
					t.Errorf("unit lacks %q:\n%s", w, text)
				}
			}
			for _, n := range c.not {
				if strings.Contains(text, n) {
					t.Errorf("unit holds %q:\n%s", n, text)
				}
			}
			if _, err := unit.DeserializeOptions(strings.NewReader(text)); err != nil {
				t.Errorf("does not parse back: %v", err)
			}
		})
	}
}
