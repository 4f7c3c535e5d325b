package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrNewerAPIVersion is returned (wrapped) for a spec written for a newer
// major version of berth than this one.
var ErrNewerAPIVersion = errors.New("spec needs a newer berth")

// ParseFile reads and parses the specs in a YAML file (several documents
// may be separated by "---"). Errors name the file.
func ParseFile(path string) ([]*App, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	apps, err := Parse(data)
	if err != nil {
		var es Errors
		if errors.As(err, &es) && len(es) > 1 {
			return nil, &FileErrors{Path: path, Errs: err}
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return apps, nil
}

// FileErrors is several problems in one spec file, printed one a line as
// "FILE:LINE: field: message" (the form editors jump to).
type FileErrors struct {
	Path string
	Errs error // Errors, possibly wrapped ("document 2: ...")
}

// Unwrap returns the problems.
func (e *FileErrors) Unwrap() error { return e.Errs }

func (e *FileErrors) Error() string {
	var es Errors
	errors.As(e.Errs, &es)
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problems:", e.Path, len(es))
	for _, fe := range es {
		b.WriteString("\n  ")
		b.WriteString(e.Path)
		if fe.Line > 0 {
			fmt.Fprintf(&b, ":%d", fe.Line)
		}
		b.WriteString(": ")
		fe.Line = 0
		b.WriteString(fe.Error())
	}
	return b.String()
}

// Parse decodes every YAML document in data strictly, applies defaults and
// validates each app. The error lists every problem of every document,
// each with its line and path (and, in a file of several documents, the
// document's number).
func Parse(data []byte) ([]*App, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var apps []*App
	var all Errors
	docs := 0
	for doc := 0; ; doc++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not valid YAML: %w", err)
		}
		docs++
		app, err := parseDocument(&n)
		var es Errors
		switch {
		case err == nil:
			apps = append(apps, app)
		case errors.As(err, &es):
			for _, e := range es {
				e.Doc = doc + 1
				all = append(all, e)
			}
		case doc > 0:
			return nil, fmt.Errorf("document %d: %w", doc+1, err)
		default:
			return nil, err
		}
	}
	if len(all) > 0 {
		if docs == 1 {
			for i := range all {
				all[i].Doc = 0
			}
		}
		return nil, all
	}
	if len(apps) == 0 {
		return nil, errors.New("no app spec found (the file is empty)")
	}
	return apps, nil
}

// parseDocument checks, decodes, defaults and validates one document and
// reports every problem at once, each with its line: a value of the wrong
// type is reported and left out (decoded as if absent), so that the rest of
// the document is still validated; a validation error on a field inside
// one already reported is dropped.
func parseDocument(n *yaml.Node) (*App, error) {
	var c checked
	if err := checkAPIVersion(n); err != nil {
		var fe FieldError
		if errors.Is(err, ErrNewerAPIVersion) || !errors.As(err, &fe) || fe.Path == "" {
			return nil, err // a newer format, or no mapping: nothing more to say
		}
		c.errs, c.badPaths = append(c.errs, fe), append(c.badPaths, "apiVersion")
	}
	checkNode(n, reflect.TypeFor[App](), "", &c)
	for _, b := range c.bad {
		*b = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: b.Line, Column: b.Column}
	}
	var app App
	if err := n.Decode(&app); err != nil {
		if len(c.errs) > 0 {
			return nil, c.errs
		}
		return nil, err
	}
	app.SetDefaults()
	var invalid Errors
	if err := app.Validate(); err != nil && !errors.As(err, &invalid) {
		return nil, err
	}
	lines := map[string]int{}
	nodeLines(n, "", lines)
	errs := c.errs
	for _, e := range invalid {
		if under(e.Path, c.badPaths) || defaultedPortName(e.Path, lines, invalid) {
			continue
		}
		e.Line = lineOf(e.Path, lines)
		errs = append(errs, e)
	}
	if len(errs) == 0 {
		return &app, nil
	}
	sort.SliceStable(errs, func(i, j int) bool {
		li, lj := errs[i].Line, errs[j].Line
		return li != 0 && (lj == 0 || li < lj)
	})
	return nil, errs
}

// nodeLines records the line of every field path in the document. It does
// not follow aliases (a field inside one gets the alias's line), so that a
// document of nested aliases costs its size, not its expansion.
func nodeLines(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			nodeLines(c, path, lines)
		}
	case yaml.MappingNode:
		if _, seen := lines[path]; !seen {
			lines[path] = n.Line
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := joinPath(path, n.Content[i].Value)
			if _, seen := lines[p]; !seen {
				lines[p] = n.Content[i].Line
			}
			nodeLines(n.Content[i+1], p, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := indexPath(path, i)
			lines[p] = c.Line
			nodeLines(c, p, lines)
		}
	}
}

// lineOf is the line of path, or of its nearest ancestor in the file (a
// field filled by a default), or of the document's first field (a field
// missing at the top).
func lineOf(path string, lines map[string]int) int {
	for path != "" {
		if l, ok := lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return lines[""]
}

// under reports whether path is one of paths or inside one of them.
func under(path string, paths []string) bool {
	for _, p := range paths {
		if path == p || p == "" || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") {
			return true
		}
	}
	return false
}

// defaultedPortName reports a port name error that only repeats a bad app
// name: the file gives no name for the port, which defaults to the app's.
func defaultedPortName(path string, lines map[string]int, es Errors) bool {
	if !strings.HasPrefix(path, "ports[") || !strings.HasSuffix(path, "].name") {
		return false
	}
	if _, inFile := lines[path]; inFile {
		return false
	}
	for _, e := range es {
		if e.Path == "name" {
			return true
		}
	}
	return false
}

// checkAPIVersion refuses a document without apiVersion, with another
// format's apiVersion, or with a newer major version.
func checkAPIVersion(doc *yaml.Node) error {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return FieldError{Line: root.Line, Msg: "an app spec must be a mapping of fields (apiVersion, name, image, ...)"}
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "apiVersion" {
			continue
		}
		v := root.Content[i+1]
		major, ok := strings.CutPrefix(v.Value, "berth/v")
		n, err := strconv.Atoi(major)
		if !ok || err != nil || n < 1 {
			return FieldError{Path: "apiVersion", Line: v.Line, Msg: fmt.Sprintf("must be %q, got %q", APIVersion, v.Value)}
		}
		if n > 1 {
			return FieldError{Path: "apiVersion", Line: v.Line, Err: ErrNewerAPIVersion,
				Msg: fmt.Sprintf("%q is newer than this berth reads (%s): upgrade berth", v.Value, APIVersion)}
		}
		return nil
	}
	return FieldError{Path: "apiVersion", Line: root.Line, Msg: fmt.Sprintf("missing: add \"apiVersion: %s\" at the top", APIVersion)}
}
