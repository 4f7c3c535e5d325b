package units

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrUnexpressible is returned (wrapped) for a value that no unit file can
// pass to a process byte for byte: NUL, a line break or invalid UTF-8.
var ErrUnexpressible = errors.New("value cannot be expressed in a unit file")

// checkExpressible refuses what systemd cannot carry.
func checkExpressible(s string) error {
	switch {
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrUnexpressible, s)
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("%w: %q contains NUL", ErrUnexpressible, s)
	case strings.ContainsAny(s, "\n\r"):
		return fmt.Errorf("%w: %q contains a line break", ErrUnexpressible, s)
	}
	return nil
}

// isPlain reports whether s can be written as a bare word in an Exec line
// with no quoting: only characters that neither systemd's word splitting,
// its C unescaping, its specifier expansion nor its variable expansion
// give meaning to.
func isPlain(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("_-+=:,./@", r):
		default:
			return false
		}
	}
	return true
}

// quote writes s as one double-quoted word for systemd: backslash and
// double quote are escaped, tabs and other control characters become C
// escapes, '%' becomes '%%' (specifiers) and, when dollar is set, '$'
// becomes '$$' (Exec lines expand $VAR; Environment= lines do not).
func quote(b *strings.Builder, s string, dollar bool) {
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '"':
			b.WriteString(`\"`)
		case r == '%':
			b.WriteString("%%")
		case r == '$' && dollar:
			b.WriteString("$$")
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// ExecArg escapes one argument of an Exec line (ExecStart= and friends) so
// that the process receives s byte for byte.
func ExecArg(s string) (string, error) {
	if err := checkExpressible(s); err != nil {
		return "", err
	}
	if isPlain(s) {
		return s, nil
	}
	var b strings.Builder
	quote(&b, s, true)
	return b.String(), nil
}

// ExecLine joins argv into the value of an Exec line. prefix holds
// systemd's special executable prefixes ("-" to ignore failure), or "".
// Arguments containing specifiers that systemd must expand (such as
// "%p-%i") are passed with Raw.
func ExecLine(prefix string, argv ...Arg) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("empty command line")
	}
	parts := make([]string, len(argv))
	for i, a := range argv {
		if a.raw {
			parts[i] = a.s
			continue
		}
		q, err := ExecArg(a.s)
		if err != nil {
			return "", fmt.Errorf("argument %d: %w", i, err)
		}
		parts[i] = q
	}
	return prefix + strings.Join(parts, " "), nil
}

// EnvAssignment escapes KEY=value for an Environment= line: quoted, with
// '%' doubled; '$' is literal there.
func EnvAssignment(key, value string) (string, error) {
	if err := checkExpressible(value); err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	var b strings.Builder
	quote(&b, key+"="+value, false)
	return b.String(), nil
}

// Value escapes a free-text value such as Description= (specifiers only).
func Value(s string) (string, error) {
	if err := checkExpressible(s); err != nil {
		return "", err
	}
	return strings.ReplaceAll(s, "%", "%%"), nil
}

// Arg is one argument of an Exec line: a literal (escaped) or raw text that
// systemd expands (a specifier such as %i).
type Arg struct {
	s   string
	raw bool
}

// Lit is a literal argument, passed to the process byte for byte.
func Lit(s string) Arg { return Arg{s: s} }

// Raw is an argument written into the unit as is, for specifiers
// ("%p-%i"). Only constant strings from this package may be Raw.
func Raw(s string) Arg { return Arg{s: s, raw: true} }

// Joined is one argument made of literal and raw pieces, written as one
// quoted word: literal pieces escaped as Lit's are, raw pieces (specifiers;
// constant strings of this package without quotes or backslashes) as they
// are.
func Joined(parts ...Arg) Arg {
	var b strings.Builder
	b.WriteByte('"')
	for _, p := range parts {
		if p.raw {
			b.WriteString(p.s)
			continue
		}
		var q strings.Builder
		quote(&q, p.s, true)
		b.WriteString(strings.TrimSuffix(strings.TrimPrefix(q.String(), `"`), `"`))
	}
	b.WriteByte('"')
	return Raw(b.String())
}

// Lits turns strings into literal arguments.
func Lits(ss ...string) []Arg {
	out := make([]Arg, len(ss))
	for i, s := range ss {
		out[i] = Lit(s)
	}
	return out
}
