// Package hook implements what the generated units call around an
// instance's life: pre-start (status starting, stale record cleared, ports
// allocated), post-start (address found, health awaited, lease-bound
// instance record written and kept by a keeper process), drain (state
// draining before the stop) and post-stop (record removed at once).
//
// Every function takes a context with a deadline: a hook never hangs a unit.
package hook
