// Package hook implements what the generated units call around an
// instance's life: pre-start (status starting, stale record cleared, ports
// allocated, sealed secrets and registry credentials written to tmpfs:
// WriteSecrets), post-start (address found, health awaited, lease-bound
// instance record written and kept by a keeper process), drain (state
// draining before the stop) and post-stop (secrets and record removed at
// once).
//
// Every function takes a context with a deadline: a hook never hangs a unit.
package hook
