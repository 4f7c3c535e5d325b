package units

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// SplitExec parses the value of an Exec line the way systemd does and
// returns the argv the process receives: specifiers are expanded first
// (from spec; "%%" is "%"), then words are split with quoting and C escapes,
// then "$$" becomes "$". Any other "$" is reported as an error, since its
// value would depend on the environment. The leading executable prefixes
// ("-", "@", ":", "+", "!") are stripped. It serves --check and the tests.
func SplitExec(line string, specifiers map[byte]string) ([]string, error) {
	line = strings.TrimLeft(line, "-@:+!")
	expanded, err := expandSpecifiers(line, specifiers)
	if err != nil {
		return nil, err
	}
	words, err := splitWords(expanded)
	if err != nil {
		return nil, err
	}
	for i, w := range words {
		if words[i], err = expandDollars(w); err != nil {
			return nil, fmt.Errorf("word %d: %w", i, err)
		}
	}
	return words, nil
}

func expandSpecifiers(s string, specifiers map[byte]string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			return "", errors.New("lone '%' at the end")
		}
		i++
		if s[i] == '%' {
			b.WriteByte('%')
			continue
		}
		v, ok := specifiers[s[i]]
		if !ok {
			return "", fmt.Errorf("unknown specifier %%%c", s[i])
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

// splitWords is systemd's extract_first_word with EXTRACT_UNQUOTE and
// EXTRACT_CUNESCAPE, applied until the line is used up.
func splitWords(s string) ([]string, error) {
	var words []string
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			return words, nil
		}
		if s[i] == ';' && (i+1 == len(s) || s[i+1] == ' ' || s[i+1] == '\t') {
			return nil, errors.New("unquoted ';' separates commands")
		}
		var w strings.Builder
		var quote byte
		for i < len(s) {
			c := s[i]
			switch {
			case quote == 0 && (c == ' ' || c == '\t'):
				goto done
			case quote == 0 && (c == '"' || c == '\''):
				quote = c
				i++
			case quote != 0 && c == quote:
				quote = 0
				i++
			case c == '\\':
				n, r, err := cunescape(s[i+1:])
				if err != nil {
					return nil, err
				}
				w.WriteString(r)
				i += 1 + n
			default:
				w.WriteByte(c)
				i++
			}
		}
		if quote != 0 {
			return nil, errors.New("unterminated quote")
		}
	done:
		words = append(words, w.String())
	}
}

// cunescape decodes one C escape (after the backslash) as systemd's
// cunescape_one does; it returns the bytes consumed and the result.
func cunescape(s string) (int, string, error) {
	if s == "" {
		return 0, "", errors.New("trailing backslash")
	}
	simple := map[byte]string{'a': "\a", 'b': "\b", 'f': "\f", 'n': "\n", 'r': "\r", 't': "\t", 'v': "\v",
		'\\': "\\", '"': "\"", '\'': "'", 's': " ", ';': ";"}
	if r, ok := simple[s[0]]; ok {
		return 1, r, nil
	}
	hex := func(n int) (int, string, error) {
		if len(s) < 1+n {
			return 0, "", errors.New("short escape")
		}
		v, err := strconv.ParseUint(s[1:1+n], 16, 32)
		if err != nil || v == 0 {
			return 0, "", fmt.Errorf("bad escape \\%s", s[:1+n])
		}
		if n == 2 {
			return 1 + n, string([]byte{byte(v)}), nil
		}
		if !utf8.ValidRune(rune(v)) {
			return 0, "", fmt.Errorf("bad code point \\%s", s[:1+n])
		}
		return 1 + n, string(rune(v)), nil
	}
	switch s[0] {
	case 'x':
		return hex(2)
	case 'u':
		return hex(4)
	case 'U':
		return hex(8)
	}
	if s[0] >= '0' && s[0] <= '7' {
		if len(s) < 3 {
			return 0, "", errors.New("short octal escape")
		}
		v, err := strconv.ParseUint(s[:3], 8, 8)
		if err != nil || v == 0 {
			return 0, "", fmt.Errorf("bad escape \\%s", s[:3])
		}
		return 3, string([]byte{byte(v)}), nil
	}
	return 0, "", fmt.Errorf("unknown escape \\%c", s[0])
}

func expandDollars(w string) (string, error) {
	if !strings.Contains(w, "$") {
		return w, nil
	}
	var b strings.Builder
	for i := 0; i < len(w); i++ {
		if w[i] != '$' {
			b.WriteByte(w[i])
			continue
		}
		if i+1 < len(w) && w[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		return "", fmt.Errorf("unescaped '$' in %q would expand a variable", w)
	}
	return b.String(), nil
}

// SplitEnvironment parses the value of an Environment= line as systemd does
// (quoted words, C escapes, then specifiers in each word; no "$"
// expansion) and returns its KEY=value assignments.
func SplitEnvironment(line string, specifiers map[byte]string) ([]string, error) {
	words, err := splitWords(line)
	if err != nil {
		return nil, err
	}
	for i, w := range words {
		if words[i], err = expandSpecifiers(w, specifiers); err != nil {
			return nil, err
		}
	}
	return words, nil
}
