package route53dns_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/berthproject/berth/internal/acmetest"
	"github.com/berthproject/berth/internal/route53dns"
	"github.com/berthproject/berth/internal/ssmfetch"
)

func provider(f *acmetest.Route53) *route53dns.Provider {
	return &route53dns.Provider{ZoneID: f.ZoneID, Endpoint: f.URL, PollInterval: 10 * time.Millisecond,
		Credentials: func(context.Context) (ssmfetch.Credentials, error) { return f.Creds, nil }}
}

// lookupTXT asks the fake's DNS server, as Pebble does.
func lookupTXT(t *testing.T, f *acmetest.Route53, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	in, err := dns.Exchange(m, f.DNSAddr)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rr := range in.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(strings.Join(txt.Txt, "")))
		}
	}
	slices.Sort(out)
	return out
}

func txt(name, value string) libdns.Record {
	return libdns.RR{Type: "TXT", Name: name, Data: value, TTL: 30 * time.Second}
}

// Two challenges at one name share its record set; removing one keeps the
// other; removing the last deletes the set. Each change is waited for
// (PENDING, then INSYNC).
func TestAppendDelete(t *testing.T) {
	f := acmetest.StartRoute53(t, "wild.test")
	p := provider(f)
	ctx := t.Context()
	const name = "_acme-challenge"
	if _, err := p.AppendRecords(ctx, "wild.test.", []libdns.Record{txt(name, "token-a")}); err != nil {
		t.Fatal(err)
	}
	got, err := p.AppendRecords(ctx, "wild.test.", []libdns.Record{txt(name, "token-b")})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].RR().Data != "token-b" || got[0].RR().Name != name {
		t.Errorf("AppendRecords returned %v, want the record", got)
	}
	if v := lookupTXT(t, f, "_acme-challenge.wild.test"); !slices.Equal(v, []string{"token-a", "token-b"}) {
		t.Errorf("TXT after two appends: %q", v)
	}
	if v := f.Values("_acme-challenge.wild.test.", "TXT"); !slices.Equal(v, []string{`"token-a"`, `"token-b"`}) {
		t.Errorf("record set values %q, want quoted TXT strings", v)
	}
	if _, err := p.DeleteRecords(ctx, "wild.test.", []libdns.Record{txt(name, "token-a")}); err != nil {
		t.Fatal(err)
	}
	if v := lookupTXT(t, f, "_acme-challenge.wild.test"); !slices.Equal(v, []string{"token-b"}) {
		t.Errorf("TXT after one delete: %q", v)
	}
	if _, err := p.DeleteRecords(ctx, "wild.test.", []libdns.Record{txt(name, "token-b")}); err != nil {
		t.Fatal(err)
	}
	if v := lookupTXT(t, f, "_acme-challenge.wild.test"); len(v) != 0 {
		t.Errorf("TXT after deleting both: %q", v)
	}
	want := []string{"UPSERT _acme-challenge.wild.test. TXT", "UPSERT _acme-challenge.wild.test. TXT",
		"UPSERT _acme-challenge.wild.test. TXT", "DELETE _acme-challenge.wild.test. TXT"}
	if got := f.Changes(); !slices.Equal(got, want) {
		t.Errorf("changes %q, want %q", got, want)
	}
	// Deleting what is not there changes nothing.
	if _, err := p.DeleteRecords(ctx, "wild.test.", []libdns.Record{txt(name, "gone")}); err != nil {
		t.Errorf("delete of a missing value: %v", err)
	}
	if n := len(f.Changes()); n != 4 {
		t.Errorf("%d changes after deleting a missing value, want 4", n)
	}
}

// A value with quotes and one longer than 255 characters survive the
// round trip through Route53's quoted strings.
func TestTXTEncoding(t *testing.T) {
	f := acmetest.StartRoute53(t, "wild.test")
	p := provider(f)
	long := strings.Repeat("x", 300)
	for _, v := range []string{`say "hi" \ bye`, long} {
		if _, err := p.AppendRecords(t.Context(), "wild.test.", []libdns.Record{txt("q", v)}); err != nil {
			t.Fatal(err)
		}
	}
	got := lookupTXT(t, f, "q.wild.test")
	want := []string{`say "hi" \ bye`, long}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestErrors(t *testing.T) {
	f := acmetest.StartRoute53(t, "wild.test")
	for _, tc := range []struct {
		name   string
		mutate func(*route53dns.Provider)
		zone   string
		want   string
	}{
		{"bad secret", func(p *route53dns.Provider) {
			p.Credentials = func(context.Context) (ssmfetch.Credentials, error) {
				c := f.Creds
				c.SecretAccessKey = "wrong"
				return c, nil
			}
		}, "wild.test.", "SignatureDoesNotMatch"},
		{"other zone id", func(p *route53dns.Provider) { p.ZoneID = "ZOTHER" }, "wild.test.", "NoSuchHostedZone"},
		{"name outside the zone", nil, "other.test.", "is not permitted in zone"},
		{"bad zone id", func(p *route53dns.Provider) { p.ZoneID = "Z1/../x" }, "wild.test.", "want Z0123"},
		{"no credentials", func(p *route53dns.Provider) {
			p.Credentials = func(context.Context) (ssmfetch.Credentials, error) {
				return ssmfetch.Credentials{}, errors.New("no role")
			}
		}, "wild.test.", "credentials: no role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := provider(f)
			if tc.mutate != nil {
				tc.mutate(p)
			}
			_, err := p.AppendRecords(t.Context(), tc.zone, []libdns.Record{txt("_acme-challenge", "v")})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	if n := len(f.Changes()); n != 0 {
		t.Errorf("%d changes applied by failing calls", n)
	}
}

// A change that never becomes INSYNC fails after WaitTimeout.
func TestWaitTimeout(t *testing.T) {
	f := acmetest.StartRoute53(t, "wild.test")
	p := provider(f)
	p.PollInterval, p.WaitTimeout = time.Hour, time.Millisecond
	_, err := p.AppendRecords(t.Context(), "wild.test.", []libdns.Record{txt("_acme-challenge", "v")})
	if err == nil || !strings.Contains(err.Error(), "not INSYNC") {
		t.Errorf("got %v, want a timeout", err)
	}
}
