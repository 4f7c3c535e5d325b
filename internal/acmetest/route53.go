package acmetest

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/berthproject/berth/internal/ssmfetch"
)

// Route53 is a fake of Route53's REST API (2013-04-01) for one hosted
// zone: ListResourceRecordSets, ChangeResourceRecordSets (CREATE, DELETE,
// UPSERT, all or nothing, with Route53's checks) and GetChange (PENDING at
// first, INSYNC at the next poll), on requests that must carry a valid
// Signature Version 4 for Creds. A DNS server on 127.0.0.1 (DNSAddr)
// serves the zone's records, its SOA, and 127.0.0.1 for every A query,
// so Pebble validates DNS-01 against what the API was told.
type Route53 struct {
	URL     string // API endpoint
	DNSAddr string // DNS server, host:port (UDP)
	Zone    string // zone name, absolute ("wild.test.")
	ZoneID  string // hosted zone id
	Creds   ssmfetch.Credentials

	mu      sync.Mutex
	sets    map[rrKey]*rrSet
	log     []string       // "UPSERT _acme-challenge.wild.test. TXT", ...
	pending map[string]int // change id → GetChange calls answered PENDING
	nextID  int
}

type rrKey struct{ name, typ string }

type rrSet struct {
	TTL    int64
	Values []string
}

// StartRoute53 starts the fake for zone ("wild.test"), stopped when the
// test ends.
func StartRoute53(t testing.TB, zone string) *Route53 {
	t.Helper()
	f := &Route53{Zone: dns.Fqdn(strings.ToLower(zone)), ZoneID: "ZFAKE0123456789", sets: map[rrKey]*rrSet{}, pending: map[string]int{},
		Creds: ssmfetch.Credentials{AccessKeyID: "AKIDFAKE", SecretAccessKey: "fake-secret", Token: "fake-token"}}
	srv := httptest.NewServer(http.HandlerFunc(f.serveHTTP))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ds := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(f.serveDNS)}
	started := make(chan struct{})
	ds.NotifyStartedFunc = func() { close(started) }
	go ds.ActivateAndServe()
	<-started
	t.Cleanup(func() { ds.Shutdown() })
	f.DNSAddr = pc.LocalAddr().String()
	return f
}

// Changes returns the changes applied so far, "ACTION NAME TYPE" each.
func (f *Route53) Changes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

// Values returns the values (as the API holds them) of a record set.
func (f *Route53) Values(name, typ string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.sets[rrKey{dns.Fqdn(strings.ToLower(name)), typ}]; s != nil {
		return slices.Clone(s.Values)
	}
	return nil
}

// r53Set is a ResourceRecordSet element: one ResourceRecord, with one
// Value, per value.
type r53Set struct {
	Name    string `xml:"Name"`
	Type    string `xml:"Type"`
	TTL     int64  `xml:"TTL,omitempty"`
	Records []struct {
		Values []string `xml:"Value"`
	} `xml:"ResourceRecords>ResourceRecord"`
}

// values returns the set's values, or an error for a ResourceRecord that
// has not exactly one Value (Route53 refuses it).
func (s r53Set) values() ([]string, error) {
	out := make([]string, 0, len(s.Records))
	for _, r := range s.Records {
		if len(r.Values) != 1 {
			return nil, fmt.Errorf("a ResourceRecord has %d Value elements, want 1", len(r.Values))
		}
		out = append(out, r.Values[0])
	}
	return out, nil
}

func newR53Set(name, typ string, ttl int64, values []string) r53Set {
	s := r53Set{Name: name, Type: typ, TTL: ttl}
	for _, v := range values {
		s.Records = append(s.Records, struct {
			Values []string `xml:"Value"`
		}{[]string{v}})
	}
	return s
}

type r53ChangeInfo struct {
	ID          string `xml:"Id"`
	Status      string `xml:"Status"`
	SubmittedAt string `xml:"SubmittedAt"`
}

func (f *Route53) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if code, msg := f.checkSignature(r, body); code != "" {
		writeR53Error(w, http.StatusForbidden, code, msg)
		return
	}
	zonePath := "/2013-04-01/hostedzone/" + f.ZoneID + "/rrset"
	switch {
	case r.URL.Path == zonePath && r.Method == http.MethodGet:
		f.list(w, r)
	case r.URL.Path == zonePath && r.Method == http.MethodPost:
		f.change(w, body)
	case strings.HasPrefix(r.URL.Path, "/2013-04-01/change/") && r.Method == http.MethodGet:
		f.getChange(w, strings.TrimPrefix(r.URL.Path, "/2013-04-01/change/"))
	case strings.HasPrefix(r.URL.Path, "/2013-04-01/hostedzone/"):
		writeR53Error(w, http.StatusNotFound, "NoSuchHostedZone", "No hosted zone found with ID: "+strings.Split(strings.TrimPrefix(r.URL.Path, "/2013-04-01/hostedzone/"), "/")[0])
	default:
		writeR53Error(w, http.StatusNotFound, "UnknownOperationException", r.Method+" "+r.URL.Path)
	}
}

// checkSignature recomputes the request's SigV4 signature with Creds.
func (f *Route53) checkSignature(r *http.Request, body []byte) (code, msg string) {
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential="+f.Creds.AccessKeyID+"/") || !strings.Contains(auth, "/us-east-1/route53/aws4_request") {
		return "InvalidClientTokenId", "The security token included in the request is invalid."
	}
	if r.Header.Get("X-Amz-Security-Token") != f.Creds.Token {
		return "InvalidClientTokenId", "The security token included in the request is invalid."
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return "IncompleteSignature", "X-Amz-Date is missing or malformed"
	}
	again, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	for k, v := range r.Header {
		if k != "Authorization" && k != "X-Amz-Date" && k != "X-Amz-Security-Token" {
			again.Header[k] = v
		}
	}
	ssmfetch.Sign(again, body, f.Creds, "us-east-1", "route53", at)
	if again.Header.Get("Authorization") != auth {
		return "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided."
	}
	return "", ""
}

// less orders record sets as Route53 lists them: by name with its labels
// reversed, then by type.
func less(a, b rrKey) int {
	ra, rb := dns.SplitDomainName(a.name), dns.SplitDomainName(b.name)
	slices.Reverse(ra)
	slices.Reverse(rb)
	if c := strings.Compare(strings.Join(ra, "."), strings.Join(rb, ".")); c != 0 {
		return c
	}
	return strings.Compare(a.typ, b.typ)
}

func (f *Route53) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	max := 300
	if m, err := strconv.Atoi(q.Get("maxitems")); err == nil && m > 0 {
		max = m
	}
	start := rrKey{dns.Fqdn(strings.ToLower(strings.ReplaceAll(q.Get("name"), `\052`, "*"))), q.Get("type")}
	f.mu.Lock()
	keys := make([]rrKey, 0, len(f.sets))
	for k := range f.sets {
		if q.Get("name") == "" || less(k, start) >= 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, less)
	type response struct {
		XMLName     xml.Name `xml:"ListResourceRecordSetsResponse"`
		Xmlns       string   `xml:"xmlns,attr"`
		Sets        []r53Set `xml:"ResourceRecordSets>ResourceRecordSet"`
		IsTruncated bool     `xml:"IsTruncated"`
		NextName    string   `xml:"NextRecordName,omitempty"`
		NextType    string   `xml:"NextRecordType,omitempty"`
		MaxItems    int      `xml:"MaxItems"`
	}
	resp := response{Xmlns: "https://route53.amazonaws.com/doc/2013-04-01/", MaxItems: max}
	for i, k := range keys {
		if i == max {
			resp.IsTruncated, resp.NextName, resp.NextType = true, strings.ReplaceAll(k.name, "*", `\052`), k.typ
			break
		}
		s := f.sets[k]
		resp.Sets = append(resp.Sets, newR53Set(strings.ReplaceAll(k.name, "*", `\052`), k.typ, s.TTL, s.Values))
	}
	f.mu.Unlock()
	writeXML(w, http.StatusOK, resp)
}

func (f *Route53) change(w http.ResponseWriter, body []byte) {
	var req struct {
		XMLName xml.Name `xml:"ChangeResourceRecordSetsRequest"`
		Changes []struct {
			Action string `xml:"Action"`
			Set    r53Set `xml:"ResourceRecordSet"`
		} `xml:"ChangeBatch>Changes>Change"`
	}
	if err := xml.Unmarshal(body, &req); err != nil || len(req.Changes) == 0 {
		writeR53Error(w, http.StatusBadRequest, "InvalidInput", fmt.Sprintf("could not parse the request: %v", err))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	next := make(map[rrKey]*rrSet, len(f.sets))
	for k, v := range f.sets {
		next[k] = v
	}
	var problems, applied []string
	for _, c := range req.Changes {
		k := rrKey{dns.Fqdn(strings.ToLower(strings.ReplaceAll(c.Set.Name, `\052`, "*"))), c.Set.Type}
		values, err := c.Set.values()
		if err != nil {
			writeR53Error(w, http.StatusBadRequest, "InvalidInput", err.Error())
			return
		}
		desc := fmt.Sprintf("[%s] with type [%s]", strings.TrimSuffix(k.name, "."), k.typ)
		if !dns.IsSubDomain(f.Zone, k.name) {
			problems = append(problems, fmt.Sprintf("RRSet with DNS name %s is not permitted in zone %s", k.name, f.Zone))
			continue
		}
		for _, v := range values {
			if k.typ == "TXT" && (!strings.HasPrefix(v, `"`) || !strings.HasSuffix(v, `"`)) {
				problems = append(problems, "Invalid Resource Record: 'FATAL problem: InvalidCharacterString (Value should be enclosed in quotation marks) encountered with '"+v+"''")
			}
		}
		cur := next[k]
		switch c.Action {
		case "CREATE":
			if cur != nil {
				problems = append(problems, "Tried to create resource record set "+desc+" but it already exists")
				continue
			}
		case "DELETE":
			if cur == nil {
				problems = append(problems, "Tried to delete resource record set "+desc+" but it was not found")
				continue
			}
			if cur.TTL != c.Set.TTL || !slices.Equal(cur.Values, values) {
				problems = append(problems, "Tried to delete resource record set "+desc+" but the values provided do not match the current values")
				continue
			}
			delete(next, k)
			applied = append(applied, c.Action+" "+k.name+" "+k.typ)
			continue
		case "UPSERT":
		default:
			problems = append(problems, "Invalid action "+c.Action)
			continue
		}
		if len(values) == 0 || c.Set.TTL <= 0 {
			problems = append(problems, "Tried to "+strings.ToLower(c.Action)+" resource record set "+desc+" without records or TTL")
			continue
		}
		next[k] = &rrSet{TTL: c.Set.TTL, Values: values}
		applied = append(applied, c.Action+" "+k.name+" "+k.typ)
	}
	if len(problems) > 0 {
		type invalid struct {
			XMLName  xml.Name `xml:"InvalidChangeBatch"`
			Xmlns    string   `xml:"xmlns,attr"`
			Messages []string `xml:"Messages>Message"`
		}
		writeXML(w, http.StatusBadRequest, invalid{Xmlns: "https://route53.amazonaws.com/doc/2013-04-01/", Messages: problems})
		return
	}
	f.sets = next
	f.log = append(f.log, applied...)
	f.nextID++
	id := fmt.Sprintf("C%06dFAKE", f.nextID)
	f.pending[id] = 0
	type response struct {
		XMLName xml.Name      `xml:"ChangeResourceRecordSetsResponse"`
		Xmlns   string        `xml:"xmlns,attr"`
		Info    r53ChangeInfo `xml:"ChangeInfo"`
	}
	writeXML(w, http.StatusOK, response{Xmlns: "https://route53.amazonaws.com/doc/2013-04-01/",
		Info: r53ChangeInfo{ID: "/change/" + id, Status: "PENDING", SubmittedAt: time.Now().UTC().Format(time.RFC3339)}})
}

func (f *Route53) getChange(w http.ResponseWriter, id string) {
	f.mu.Lock()
	polls, ok := f.pending[id]
	status := "INSYNC"
	if ok && polls == 0 {
		status = "PENDING"
	}
	f.pending[id] = polls + 1
	f.mu.Unlock()
	if !ok {
		writeR53Error(w, http.StatusNotFound, "NoSuchChange", "A change with the specified change ID does not exist.")
		return
	}
	type response struct {
		XMLName xml.Name      `xml:"GetChangeResponse"`
		Xmlns   string        `xml:"xmlns,attr"`
		Info    r53ChangeInfo `xml:"ChangeInfo"`
	}
	writeXML(w, http.StatusOK, response{Xmlns: "https://route53.amazonaws.com/doc/2013-04-01/",
		Info: r53ChangeInfo{ID: "/change/" + id, Status: status, SubmittedAt: time.Now().UTC().Format(time.RFC3339)}})
}

func writeXML(w http.ResponseWriter, status int, v any) {
	b, _ := xml.Marshal(v)
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	w.Write(append([]byte(xml.Header), b...))
}

func writeR53Error(w http.ResponseWriter, status int, code, msg string) {
	type errorResponse struct {
		XMLName xml.Name `xml:"ErrorResponse"`
		Xmlns   string   `xml:"xmlns,attr"`
		Type    string   `xml:"Error>Type"`
		Code    string   `xml:"Error>Code"`
		Message string   `xml:"Error>Message"`
		ID      string   `xml:"RequestId"`
	}
	writeXML(w, status, errorResponse{Xmlns: "https://route53.amazonaws.com/doc/2013-04-01/", Type: "Sender", Code: code, Message: msg, ID: "fake"})
}
