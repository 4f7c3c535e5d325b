package spec

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// scalarChecker is implemented by types that validate their own YAML scalar
// (Duration). The walker calls it so the error carries the field path.
type scalarChecker interface {
	checkScalar(n *yaml.Node) error
}

var scalarCheckerType = reflect.TypeFor[scalarChecker]()

// checked is what checkNode found: every problem, and the nodes of wrong
// type (with their paths), which Parse blanks so that the rest of the
// document can still be decoded and validated.
type checked struct {
	errs     Errors
	bad      []*yaml.Node
	badPaths []string
}

// checkNode walks a YAML node against the Go type it will be decoded into
// and records unknown fields (with a suggestion) and wrong types, each with
// its field path and line. Decoding proper is left to yaml.v3.
func checkNode(n *yaml.Node, t reflect.Type, path string, c *checked) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		checkNode(n.Content[0], t, path, c)
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value leaves the zero value
	}
	bad := func(format string, args ...any) {
		c.errs = append(c.errs, FieldError{Path: path, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
		c.bad = append(c.bad, n)
		c.badPaths = append(c.badPaths, path)
	}
	if t.Implements(scalarCheckerType) {
		if n.Kind != yaml.ScalarNode {
			bad("must be a single value, got %s", describe(n))
			return
		}
		if err := reflect.Zero(t).Interface().(scalarChecker).checkScalar(n); err != nil {
			bad("%v", err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			bad("must be a mapping of fields, got %s", describe(n))
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			f, ok := fields[key.Value]
			if !ok {
				msg := fmt.Sprintf("unknown field %q", key.Value)
				if s := suggest(key.Value, fieldNames(fields)); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				c.errs = append(c.errs, FieldError{Path: path, Line: key.Line, Msg: msg})
				continue
			}
			checkNode(val, f.Type, joinPath(path, key.Value), c)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			bad("must be a list, got %s", describe(n))
			return
		}
		for i, item := range n.Content {
			checkNode(item, t.Elem(), indexPath(path, i), c)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			bad("must be a mapping, got %s", describe(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			if key.Kind != yaml.ScalarNode {
				c.errs = append(c.errs, FieldError{Path: path, Line: key.Line, Msg: "keys must be plain strings"})
				c.bad, c.badPaths = append(c.bad, n), append(c.badPaths, path)
				return
			}
			checkNode(val, t.Elem(), joinPath(path, key.Value), c)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			bad("must be a single value, got %s", describe(n))
		}
	case reflect.Int, reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			bad("must be a whole number, got %s", describe(n))
		}
	case reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
			bad("must be a number, got %s", describe(n))
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			bad("must be true or false, got %s", describe(n))
		}
	}
}

// describe names what a YAML node holds, for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	return fmt.Sprintf("%q", v)
}

// yamlFields maps the YAML keys of a struct type to its fields.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f
	}
	return out
}

func fieldNames(m map[string]reflect.StructField) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	return names
}

// suggest returns the known name closest to s, or "" if none is close:
// same letters ignoring case and separators ("idle_timeout" → "idleTimeout"),
// or an edit distance of at most a third of the name (at least 2).
func suggest(s string, known []string) string {
	norm := func(x string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(x))
	}
	best, bestD := "", -1
	for _, k := range known {
		if norm(k) == norm(s) {
			return k
		}
		d := levenshtein(strings.ToLower(s), strings.ToLower(k))
		limit := max(2, len(k)/3)
		if d <= limit && (bestD < 0 || d < bestD || (d == bestD && k < best)) {
			best, bestD = k, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
