package route53dns

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/berthproject/berth/internal/ssmfetch"
)

// xmlns is Route53's API namespace.
const xmlns = "https://route53.amazonaws.com/doc/2013-04-01/"

// RecordSet is a resource record set as Route53's XML has it: one
// ResourceRecord element, with one Value, per value.
type RecordSet struct {
	Name    string           `xml:"Name"`
	Type    string           `xml:"Type"`
	TTL     int64            `xml:"TTL,omitempty"`
	Records []ResourceRecord `xml:"ResourceRecords>ResourceRecord"`
}

// ResourceRecord is one value of a record set.
type ResourceRecord struct {
	Value string `xml:"Value"`
}

// values returns the set's values.
func (s *RecordSet) values() []string {
	out := make([]string, len(s.Records))
	for i, r := range s.Records {
		out[i] = r.Value
	}
	return out
}

// setValues replaces the set's values.
func (s *RecordSet) setValues(vs []string) {
	s.Records = make([]ResourceRecord, len(vs))
	for i, v := range vs {
		s.Records[i] = ResourceRecord{Value: v}
	}
}

// Change is one action on a record set: CREATE, DELETE or UPSERT.
type Change struct {
	Action string    `xml:"Action"`
	Set    RecordSet `xml:"ResourceRecordSet"`
}

// ChangeRequest is ChangeResourceRecordSets' body.
type ChangeRequest struct {
	XMLName xml.Name `xml:"ChangeResourceRecordSetsRequest"`
	Xmlns   string   `xml:"xmlns,attr"`
	Comment string   `xml:"ChangeBatch>Comment,omitempty"`
	Changes []Change `xml:"ChangeBatch>Changes>Change"`
}

// ChangeInfo is a change's state: PENDING, then INSYNC.
type ChangeInfo struct {
	ID     string `xml:"Id"`
	Status string `xml:"Status"`
}

// ChangeResponse is the answer to ChangeResourceRecordSets and GetChange.
type ChangeResponse struct {
	Info ChangeInfo `xml:"ChangeInfo"`
}

// ListResponse is ListResourceRecordSets' answer.
type ListResponse struct {
	XMLName     xml.Name    `xml:"ListResourceRecordSetsResponse"`
	Sets        []RecordSet `xml:"ResourceRecordSets>ResourceRecordSet"`
	IsTruncated bool        `xml:"IsTruncated"`
	NextName    string      `xml:"NextRecordName,omitempty"`
	NextType    string      `xml:"NextRecordType,omitempty"`
	MaxItems    string      `xml:"MaxItems"`
}

// apiError is an error answer: ErrorResponse (Code, Message) or
// InvalidChangeBatch (Messages).
type apiError struct {
	Status   int
	Code     string   `xml:"Error>Code"`
	Message  string   `xml:"Error>Message"`
	Messages []string `xml:"Messages>Message"`
}

func (e *apiError) Error() string {
	msg := e.Message
	if len(e.Messages) > 0 {
		msg = strings.Join(e.Messages, "; ")
	}
	code := e.Code
	if code == "" {
		code = http.StatusText(e.Status)
	}
	return fmt.Sprintf("route53: %s: %s", code, msg)
}

// call sends one signed request and decodes the XML answer into out.
func (p *Provider) call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body []byte
	if in != nil {
		b, err := xml.Marshal(in)
		if err != nil {
			return err
		}
		body = append([]byte(xml.Header), b...)
	}
	u := strings.TrimSuffix(p.endpoint(), "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/xml")
	}
	creds, err := p.credentials(ctx)
	if err != nil {
		return fmt.Errorf("route53: credentials: %w", err)
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	ssmfetch.Sign(req, body, creds, "us-east-1", "route53", now())
	resp, err := p.client().Do(req)
	if err != nil {
		return fmt.Errorf("route53: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("route53: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		e := &apiError{Status: resp.StatusCode}
		if xml.Unmarshal(raw, e) != nil || (e.Code == "" && e.Message == "" && len(e.Messages) == 0) {
			e.Message = strings.TrimSpace(string(raw[:min(len(raw), 200)]))
		}
		return e
	}
	if out != nil {
		if err := xml.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("route53: decode %s %s: %w", method, path, err)
		}
	}
	return nil
}
