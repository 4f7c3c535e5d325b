package hook

import (
	"encoding/json"
	"slices"
	"strings"
)

// dockerHub is the registry of images named without one ("nginx",
// "library/nginx"), under the names a config.json may give it.
var dockerHub = []string{"docker.io", "index.docker.io", "registry-1.docker.io"}

// AuthRegistries returns the registries a docker config.json has
// credentials for: its "auths" keys as written, sorted. It never returns
// credentials; nil if b is not such a file.
func AuthRegistries(b []byte) []string {
	var cfg struct {
		Auths map[string]json.RawMessage `json:"auths"`
	}
	if json.Unmarshal(b, &cfg) != nil {
		return nil
	}
	var regs []string
	for k := range cfg.Auths {
		regs = append(regs, k)
	}
	slices.Sort(regs)
	return regs
}

// ImageRegistry returns the registry host[:port] of an image reference,
// as docker and podman read it: the first path component if it has a "."
// or a ":" or is "localhost", else Docker Hub ("docker.io").
func ImageRegistry(image string) string {
	first, _, ok := strings.Cut(image, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return strings.ToLower(first)
	}
	return "docker.io"
}

// HasRegistry reports whether one of a config.json's "auths" keys is for
// registry. Keys may carry a scheme ("https://"), a path ("/v1/", or a
// namespace, which podman allows); only their host[:port] is compared, and
// Docker Hub's names are one registry.
func HasRegistry(auths []string, registry string) bool {
	registry = strings.ToLower(registry)
	for _, k := range auths {
		k = strings.ToLower(k)
		k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
		host, _, _ := strings.Cut(k, "/")
		if host == registry || (slices.Contains(dockerHub, host) && slices.Contains(dockerHub, registry)) {
			return true
		}
	}
	return false
}
