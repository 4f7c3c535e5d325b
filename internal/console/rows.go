package console

import (
	"bytes"
	"html/template"
	"net/url"
	"strconv"
)

// The apps table is the one page that grows with the cluster (1,000 rows
// and more), so its rows are written here rather than by html/template,
// whose per-value escaping cost half the page's time. Every value goes
// through esc (html/template's own HTMLEscapeString: & ' < > " and NUL)
// and is placed only in element text or a double-quoted attribute; the
// one URL is path-escaped first. TestConsoleHostileValues checks the rows
// with markup in every field.

func esc(b *bytes.Buffer, s string) { b.WriteString(template.HTMLEscapeString(s)) }

func itoa(b *bytes.Buffer, n int64) { b.WriteString(strconv.FormatInt(n, 10)) }

// appRowsHTML writes rows as <tr> elements.
func appRowsHTML(rows []appRow) template.HTML {
	var b bytes.Buffer
	b.Grow(len(rows) * 600)
	for i := range rows {
		writeAppRow(&b, &rows[i])
	}
	return template.HTML(b.String())
}

func writeAppRow(b *bytes.Buffer, r *appRow) {
	b.WriteString(`<tr data-app="`)
	esc(b, r.Name)
	b.WriteString(`">` + "\n" + `<th scope="row"><a href="/apps/`)
	esc(b, url.PathEscape(r.Name))
	b.WriteString(`">`)
	esc(b, r.Name)
	b.WriteString(`</a></th>` + "\n" + `<td><span class="badge `)
	b.WriteString(r.Tone) // one of four constants
	b.WriteString(`">`)
	esc(b, r.Current)
	b.WriteString(`</span>`)
	if r.ShowExpected {
		b.WriteString(` <span class="muted">→ `)
		esc(b, r.Expected)
		b.WriteString(`</span>`)
	}
	b.WriteString(`</td>` + "\n" + `<td class="num" data-up="`)
	itoa(b, int64(r.Up))
	b.WriteString(`">`)
	itoa(b, int64(r.Up))
	b.WriteByte('/')
	itoa(b, int64(r.Wanted))
	if r.Registered != r.Up {
		b.WriteString(` <span class="muted">(`)
		itoa(b, int64(r.Registered))
		b.WriteString(` registered)</span>`)
	}
	b.WriteString(`</td>` + "\n" + `<td>`)
	esc(b, r.Version)
	b.WriteString(`</td>` + "\n" + `<td>`)
	if r.LastStamp != "" {
		b.WriteString(`<time datetime="`)
		b.WriteString(r.LastStamp) // RFC 3339, formatted here
		b.WriteString(`" data-ago="`)
		b.WriteString(r.LastMS)
		b.WriteString(`">`)
		b.WriteString(r.LastStamp)
		b.WriteString(`</time>`)
		if r.Conns > 0 {
			b.WriteString(` · `)
			itoa(b, int64(r.Conns))
			b.WriteString(` open`)
		}
	} else {
		b.WriteString(`<span class="muted">never</span>`)
	}
	b.WriteString(`</td>` + "\n" + `<td>`)
	if r.SleepStamp != "" {
		b.WriteString(`<time class="countdown" datetime="`)
		b.WriteString(r.SleepStamp)
		b.WriteString(`" data-deadline="`)
		b.WriteString(r.SleepMS)
		b.WriteString(`">`)
		b.WriteString(r.SleepStamp)
		b.WriteString(`</time>`)
	} else {
		b.WriteString(`<span class="muted">–</span>`)
	}
	b.WriteString(`</td>` + "\n" + `<td>`)
	if d := r.Deploy; d != nil {
		b.WriteString(`<span class="deploy">`)
		esc(b, d.Phase)
		b.WriteByte(' ')
		itoa(b, d.From)
		b.WriteString(`→`)
		itoa(b, d.To)
		if d.Active {
			b.WriteString(` <progress max="`)
			itoa(b, int64(d.Want))
			b.WriteString(`" value="`)
			itoa(b, int64(d.Ready))
			b.WriteString(`" aria-label="instances of generation `)
			itoa(b, d.To)
			b.WriteString(` up"></progress> `)
			itoa(b, int64(d.Ready))
			b.WriteByte('/')
			itoa(b, int64(d.Want))
			if d.Canary > 0 {
				b.WriteString(` · canary `)
				itoa(b, int64(d.Canary))
				b.WriteByte('%')
			}
		}
		b.WriteString(`</span>`)
	} else {
		b.WriteString(`<span class="muted">–</span>`)
	}
	b.WriteString("</td>\n</tr>\n")
}
