package api

import (
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/api.md's generated reference from openapi.json")

type oaDoc struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		Summary     string `json:"summary"`
		Description string `json:"description"`
		OperationID string `json:"operationId"`
		Scope       string `json:"x-berth-scope"`
		Parameters  []struct {
			Name, In, Description string
			Required              bool
		} `json:"parameters"`
		RequestBody *struct {
			Description string
			Content     map[string]struct {
				Schema struct {
					Ref string `json:"$ref"`
				}
			}
		} `json:"requestBody"`
		Responses map[string]struct {
			Description string
		} `json:"responses"`
	} `json:"paths"`
	Components struct {
		Schemas map[string]json.RawMessage `json:"schemas"`
	} `json:"components"`
}

func loadOpenAPI(t *testing.T) oaDoc {
	t.Helper()
	var d oaDoc
	if err := json.Unmarshal(OpenAPI(), &d); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return d
}

// TestAPIOpenAPIMatchesRoutes: the document lists exactly the routes the
// server serves, each with the scope it enforces, and every schema it
// references exists.
func TestAPIOpenAPIMatchesRoutes(t *testing.T) {
	d := loadOpenAPI(t)
	if !strings.HasPrefix(d.OpenAPI, "3.") {
		t.Fatalf("openapi %q, want 3.x", d.OpenAPI)
	}
	s := &Server{}
	served := map[string]string{}
	for _, rt := range s.table() {
		served[rt.Method+" "+rt.Path] = rt.Scope
	}
	documented := map[string]string{}
	for path, ops := range d.Paths {
		for m, op := range ops {
			scope := op.Scope
			if scope == "public" {
				scope = ""
			}
			documented[strings.ToUpper(m)+" "+path] = scope
			if op.Summary == "" || op.OperationID == "" {
				t.Errorf("%s %s: no summary or operationId", m, path)
			}
		}
	}
	for r, scope := range served {
		if ds, ok := documented[r]; !ok {
			t.Errorf("%s is served but not in openapi.json", r)
		} else if ds != scope {
			t.Errorf("%s: openapi.json says scope %q, the server enforces %q", r, ds, scope)
		}
	}
	for r := range documented {
		if _, ok := served[r]; !ok {
			t.Errorf("%s is in openapi.json but not served", r)
		}
	}
	raw := string(OpenAPI())
	for _, part := range strings.Split(raw, `"#/components/schemas/`)[1:] {
		name := part[:strings.IndexByte(part, '"')]
		if _, ok := d.Components.Schemas[name]; !ok {
			t.Errorf("schema %s is referenced but not defined", name)
		}
	}
}

// TestAPIOpenAPIServed: the server serves the document it embeds.
func TestAPIOpenAPIServed(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do("GET", "/v1/openapi.json", "", nil).want(t, 200, "openapi")
	if string(r.body) != string(OpenAPI()) || r.h.Get("Content-Type") != "application/json" {
		t.Fatal("served document differs from the embedded one")
	}
}

const (
	genBegin = "<!-- BEGIN GENERATED from internal/api/openapi.json by go test ./internal/api -run OpenAPIDocs -update -->"
	genEnd   = "<!-- END GENERATED -->"
)

// TestAPIOpenAPIDocs: docs/api.md's reference is openapi.json rendered.
func TestAPIOpenAPIDocs(t *testing.T) {
	path := "../../docs/api.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, genBegin), strings.Index(doc, genEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated-section markers", path)
	}
	want := doc[:i] + genBegin + "\n" + renderOpenAPI(loadOpenAPI(t)) + genEnd + doc[j+len(genEnd):]
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%s is out of date with openapi.json: run go test ./internal/api -run OpenAPIDocs -update", path)
}

func renderOpenAPI(d oaDoc) string {
	var b strings.Builder
	b.WriteString("\n| method | path | scope | what |\n|---|---|---|---|\n")
	type op struct{ method, path string }
	var ops []op
	for _, p := range slices.Sorted(maps.Keys(d.Paths)) {
		for _, m := range []string{"get", "post", "delete"} {
			if _, ok := d.Paths[p][m]; ok {
				ops = append(ops, op{m, p})
			}
		}
	}
	for _, o := range ops {
		x := d.Paths[o.path][o.method]
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", strings.ToUpper(o.method), o.path, x.Scope, x.Summary)
	}
	for _, o := range ops {
		x := d.Paths[o.path][o.method]
		fmt.Fprintf(&b, "\n### %s %s\n\n%s (scope: %s)\n", strings.ToUpper(o.method), o.path, x.Summary, x.Scope)
		if x.Description != "" {
			fmt.Fprintf(&b, "\n%s\n", x.Description)
		}
		for _, p := range x.Parameters {
			fmt.Fprintf(&b, "\n- %s `%s`%s", p.In, p.Name, map[bool]string{true: " (required)"}[p.Required])
			if p.Description != "" {
				fmt.Fprintf(&b, ": %s", p.Description)
			}
		}
		if len(x.Parameters) > 0 {
			b.WriteString("\n")
		}
		if rb := x.RequestBody; rb != nil {
			for _, ct := range slices.Sorted(maps.Keys(rb.Content)) {
				schema := strings.TrimPrefix(rb.Content[ct].Schema.Ref, "#/components/schemas/")
				if schema == "" {
					schema = rb.Description
				}
				fmt.Fprintf(&b, "\nBody (%s): %s\n", ct, schema)
			}
		}
		b.WriteString("\n| status | meaning |\n|---|---|\n")
		for _, code := range slices.Sorted(maps.Keys(x.Responses)) {
			fmt.Fprintf(&b, "| %s | %s |\n", code, x.Responses[code].Description)
		}
	}
	b.WriteString("\n")
	return b.String()
}
