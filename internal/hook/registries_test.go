package hook

import (
	"slices"
	"testing"
)

func TestImageRegistry(t *testing.T) {
	for image, want := range map[string]string{
		"nginx":                                         "docker.io",
		"library/nginx:1.25":                            "docker.io",
		"localhost/berth-demo:test":                     "localhost",
		"localhost:5000/berth/demo:1":                   "localhost:5000",
		"Registry.Example.com/finance/billing:1":        "registry.example.com",
		"123.dkr.ecr.eu-west-1.amazonaws.com/x:1":       "123.dkr.ecr.eu-west-1.amazonaws.com",
		"gitlab.example.com:4567/group/app@sha256:0123": "gitlab.example.com:4567",
	} {
		if got := ImageRegistry(image); got != want {
			t.Errorf("ImageRegistry(%q) = %q, want %q", image, got, want)
		}
	}
}

func TestHasRegistry(t *testing.T) {
	cfg := DockerConfig("localhost:5000", "u", "p")
	regs := AuthRegistries(cfg)
	if !slices.Equal(regs, []string{"localhost:5000"}) {
		t.Fatalf("AuthRegistries = %q", regs)
	}
	if AuthRegistries([]byte("not json")) != nil {
		t.Error("AuthRegistries of a non-JSON value is not nil")
	}
	for _, c := range []struct {
		auths    []string
		registry string
		want     bool
	}{
		{regs, "localhost:5000", true},
		{regs, "localhost", false},
		{regs, "localhost:5001", false},
		{[]string{"https://index.docker.io/v1/"}, "docker.io", true},
		{[]string{"docker.io"}, "docker.io", true},
		{[]string{"https://Registry.Example.com"}, "registry.example.com", true},
		{[]string{"registry.example.com/finance"}, "registry.example.com", true},
		{[]string{"registry.example.com.evil"}, "registry.example.com", false},
		{nil, "docker.io", false},
	} {
		if got := HasRegistry(c.auths, c.registry); got != c.want {
			t.Errorf("HasRegistry(%q, %q) = %v, want %v", c.auths, c.registry, got, c.want)
		}
	}
}
