// Package console is berth's web dashboard: server-rendered HTML pages
// (html/template, embedded with the static files) of the registry's watch
// cache, served by the API process beside /v1/ (internal/api).
//
// Pages: the apps (/), one app (/apps/{app}), the nodes (/nodes), the
// certificates (/certificates) and a live event log (/events). A small
// script (static/console.js) follows the API's event stream (GET
// /v1/events) and swaps in fresh server-rendered rows for what changed;
// actions (scale, passivate, wake, delete, deploy promote / abort /
// rollback) go to the JSON API with an admin token the operator enters
// once (kept in the tab's sessionStorage, sent as a bearer header, never
// in a URL). Reads follow the API's rule: a read token, or none from
// loopback under berth up. Every page carries a Content-Security-Policy
// allowing only the console's own script and style files. docs/console.md
// describes it.
package console
