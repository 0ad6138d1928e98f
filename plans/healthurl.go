package plans

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
)

// urlData is what a health URL template sees.
type urlData struct {
	Host    string // the host's address without the port
	Name    string
	Version string
}

var urlFields = map[string]bool{"Host": true, "Name": true, "Version": true}

const urlFieldsHint = "use {{.Host}}, {{.Name}} or {{.Version}}"

// HealthURL renders the http health check's URL for h: {{.Host}} is h's
// address without the port (an IPv6 address in brackets), {{.Name}} its
// name, {{.Version}} the plan's version.
func (p *Plan) HealthURL(h Host) (string, error) {
	if p.Health.HTTP == nil {
		return "", errors.New("plans: the plan has no http health check")
	}
	return p.Health.HTTP.URLFor(h, p.Version)
}

// URLFor renders the check's URL for h at version (the one rendering both
// validation and the health checker use).
func (c *HTTPCheck) URLFor(h Host, version string) (string, error) {
	return renderURL(c.URL, h, version)
}

// HostOnly is h's address without the port (what {{.Host}} renders to).
func (h Host) HostOnly() string {
	host, _, err := net.SplitHostPort(h.Address)
	if err != nil {
		return h.Address
	}
	return host
}

// checkURLTemplate parses a URL template and allows only what a URL needs:
// text, {{.Host}}, {{.Name}}, {{.Version}}, functions and if/else. It
// returns what is wrong, or "".
func checkURLTemplate(s string) string {
	t, err := template.New("url").Parse(s)
	if err != nil {
		msg := err.Error()
		msg = strings.TrimPrefix(msg, "template: ")
		msg = strings.TrimPrefix(msg, "url:")
		return "not a valid template: " + msg
	}
	if len(t.Templates()) > 1 {
		return "must not define templates; " + urlFieldsHint
	}
	if t.Tree == nil || t.Tree.Root == nil {
		return ""
	}
	return checkTemplateNode(t.Tree.Root)
}

func checkTemplateNode(n parse.Node) string {
	switch n := n.(type) {
	case nil:
		return ""
	case *parse.ListNode:
		if n == nil {
			return ""
		}
		for _, c := range n.Nodes {
			if msg := checkTemplateNode(c); msg != "" {
				return msg
			}
		}
		return ""
	case *parse.TextNode, *parse.CommentNode:
		return ""
	case *parse.ActionNode:
		return checkPipe(n.Pipe)
	case *parse.IfNode:
		if msg := checkPipe(n.Pipe); msg != "" {
			return msg
		}
		if msg := checkTemplateNode(n.List); msg != "" {
			return msg
		}
		if n.ElseList != nil {
			return checkTemplateNode(n.ElseList)
		}
		return ""
	}
	return fmt.Sprintf("unsupported template action %s; %s", shorten(n.String()), urlFieldsHint)
}

func checkPipe(p *parse.PipeNode) string {
	if p == nil {
		return ""
	}
	for _, c := range p.Cmds {
		for _, a := range c.Args {
			if msg := checkArg(a); msg != "" {
				return msg
			}
		}
	}
	return ""
}

func checkArg(a parse.Node) string {
	switch a := a.(type) {
	case *parse.FieldNode:
		if len(a.Ident) != 1 || !urlFields[a.Ident[0]] {
			return fmt.Sprintf("unknown field %s; %s", a.String(), urlFieldsHint)
		}
	case *parse.VariableNode:
		if len(a.Ident) > 2 || len(a.Ident) == 2 && (a.Ident[0] != "$" || !urlFields[a.Ident[1]]) {
			return fmt.Sprintf("unknown field %s; %s", a.String(), urlFieldsHint)
		}
	case *parse.ChainNode:
		return fmt.Sprintf("unknown field %s; %s", shorten(a.String()), urlFieldsHint)
	case *parse.PipeNode:
		return checkPipe(a)
	}
	return ""
}

func shorten(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// limitedBuilder stops a template that writes far more than a URL.
type limitedBuilder struct{ strings.Builder }

func (b *limitedBuilder) Write(p []byte) (int, error) {
	if b.Len()+len(p) > 4096 {
		return 0, errors.New("output too long for a URL")
	}
	return b.Builder.Write(p)
}

// renderURL renders tmpl for h and checks the result is an http(s) URL.
func renderURL(tmpl string, h Host, version string) (string, error) {
	if msg := checkURLTemplate(tmpl); msg != "" {
		return "", errors.New(msg)
	}
	t, err := template.New("url").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", err
	}
	var b limitedBuilder
	host := h.HostOnly()
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // an IPv6 address, written the way a URL needs it
	}
	if err := t.Execute(&b, urlData{Host: host, Name: h.Name, Version: version}); err != nil {
		return "", fmt.Errorf("cannot render for host %s: %v", h.Name, err)
	}
	s := b.String()
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("renders to %s for host %s, which is not a valid URL", quote(s), h.Name)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("must be an http:// or https:// URL, got %s for host %s", quote(s), h.Name)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("renders to %s for host %s, which has no host", quote(s), h.Name)
	}
	if port := u.Port(); port != "" {
		if _, msg := parseHostAddress("x:" + port); msg != "" {
			return "", fmt.Errorf("renders to %s for host %s, which has a bad port", quote(s), h.Name)
		}
	}
	return s, nil
}

// fmtDuration writes a duration the way a plan would: 30s, 5m, 1h30m, 200ms.
func fmtDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0 && d >= 2*time.Minute && d < time.Hour:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0 && d < 10*time.Minute:
		return fmt.Sprintf("%ds", d/time.Second)
	case d%time.Millisecond == 0 && d < time.Second:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
	s := d.String()
	// 1h30m0s -> 1h30m, 2m30s stays.
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
