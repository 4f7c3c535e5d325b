// Package units renders berth's systemd and fleet unit files: the template
// unit of an app (<app>@.service, from an app spec) and the platform's own
// units (router, dnsd, agent, passivation timer).
//
// Unit skeletons are embedded files (templates/); the options computed from
// a spec are added as go-systemd unit.UnitOption values and the result is
// written with unit.Serialize. Every value that comes from a spec goes
// through ExecArg, EnvAssignment or Value, which escape it exactly for
// systemd (specifiers, quoting, C escapes, $ expansion) and refuse what a
// unit file cannot carry (NUL, line breaks, invalid UTF-8).
package units
