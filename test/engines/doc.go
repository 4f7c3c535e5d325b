// Package engines runs the units berth renders for the docker and podman
// runtimes on real engines (Debian's docker.io and podman in a systemd
// node, internal/enginetest), the node agent's Docker registrar against the
// real engine's event stream, and image pulls from a real private registry
// (Debian's docker-registry with htpasswd and TLS).
package engines
