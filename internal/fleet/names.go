package fleet

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// unitTypes are the unit types fleet schedules.
var unitTypes = []string{"service", "socket", "device", "mount", "automount", "timer", "path"}

// Name is a parsed unit name: "web.service", the template "web@.service"
// or its instance "web@1.service".
type Name struct {
	Full      string // as given
	Prefix    string // "web"
	Instance  string // "1" ("" for a plain unit or a template)
	Type      string // "service"
	Template  bool   // "web@.service"
	Instanced bool   // "web@1.service"
}

// ParseName checks a unit name: a known type, characters systemd allows,
// at most 255 bytes.
func ParseName(s string) (Name, error) {
	n := Name{Full: s}
	dot := strings.LastIndexByte(s, '.')
	if dot <= 0 || len(s) > 255 {
		return n, fmt.Errorf("unit name %q: want NAME.TYPE, at most 255 characters", s)
	}
	n.Type = s[dot+1:]
	if !slices.Contains(unitTypes, n.Type) {
		return n, fmt.Errorf("unit name %q: type %q is not one fleet schedules (%s)", s, n.Type, strings.Join(unitTypes, ", "))
	}
	base := s[:dot]
	for _, c := range base {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(":-_.\\@", c)) {
			return n, fmt.Errorf("unit name %q: character %q is not allowed", s, c)
		}
	}
	n.Prefix = base
	if at := strings.IndexByte(base, '@'); at >= 0 {
		n.Prefix, n.Instance = base[:at], base[at+1:]
		if n.Prefix == "" || strings.IndexByte(n.Instance, '@') >= 0 {
			return n, fmt.Errorf("unit name %q: want PREFIX@INSTANCE.TYPE", s)
		}
		n.Template, n.Instanced = n.Instance == "", n.Instance != ""
	}
	return n, nil
}

// TemplateName is the template an instance comes from ("web@.service"
// for "web@1.service"); "" for a unit that is not an instance.
func (n Name) TemplateName() string {
	if !n.Instanced {
		return ""
	}
	return n.Prefix + "@." + n.Type
}

// Expand expands fleetctl-style brace ranges, as a shell would before
// fleetctl sees them: "web@{1..3}.service" is web@1, web@2 and
// web@3.service. Names without braces come back as they are. A range
// goes up to 10,000 names.
func Expand(s string) ([]string, error) {
	open := strings.IndexByte(s, '{')
	if open < 0 {
		return []string{s}, nil
	}
	end := strings.IndexByte(s[open:], '}')
	if end < 0 {
		return nil, fmt.Errorf("%q: unclosed {", s)
	}
	end += open
	lo, hi, ok := strings.Cut(s[open+1:end], "..")
	a, errA := strconv.Atoi(lo)
	b, errB := strconv.Atoi(hi)
	if !ok || errA != nil || errB != nil || a < 0 || b < 0 {
		return nil, fmt.Errorf("%q: want a range like {1..10}", s)
	}
	step := 1
	if b < a {
		step = -1
	}
	if (b-a)*step >= 10000 {
		return nil, fmt.Errorf("%q: a range of more than 10,000 names", s)
	}
	var out []string
	for i := a; ; i += step {
		rest, err := Expand(s[end+1:])
		if err != nil {
			return nil, err
		}
		for _, r := range rest {
			out = append(out, s[:open]+strconv.Itoa(i)+r)
		}
		if i == b {
			break
		}
	}
	return out, nil
}
