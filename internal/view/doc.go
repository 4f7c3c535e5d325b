// Package view turns a registry snapshot into the rows operators read:
// "berth status" and "berth routes" print them, the HTTP API
// (internal/api) serves them as JSON and its event stream carries them.
// Views are plain data with JSON tags; they never hold secrets (a
// certificate's key stays in the snapshot).
package view
