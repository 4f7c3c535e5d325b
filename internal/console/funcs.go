package console

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// funcs are the templates' helpers; they return text, escaped by the
// template like any other value.
var funcs = template.FuncMap{
	"dur":    dur,
	"stamp":  stamp,
	"hms":    hms,
	"clock":  func(t time.Time) string { return t.UTC().Format("15:04:05") },
	"unixms": func(t time.Time) int64 { return t.UnixMilli() },
	"pct":    func(f float64) string { return fmt.Sprintf("%.1f%%", f*100) },
	"rate":   func(f float64) string { return fmt.Sprintf("%.2f/s", f) },
	"join":   strings.Join,
}

// dur prints a duration the way the pages do: 3d4h, 2h5m, 4m12s, 9s.
func dur(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d >= 48*time.Hour:
		s = fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	case d >= time.Hour:
		s = fmt.Sprintf("%dh%dm", d/time.Hour, d%time.Hour/time.Minute)
	case d >= time.Minute:
		s = fmt.Sprintf("%dm%ds", d/time.Minute, d%time.Minute/time.Second)
	default:
		s = fmt.Sprintf("%ds", d/time.Second)
	}
	if neg {
		return "-" + s
	}
	return s
}

// stamp is a time in RFC 3339, UTC.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// hms is the time of day (UTC) of an RFC 3339 time, as the event log
// shows it (the full time is in the element's datetime).
func hms(rfc3339 string) string {
	if len(rfc3339) >= 19 {
		return rfc3339[11:19]
	}
	return rfc3339
}
