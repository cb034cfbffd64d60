package gerrit

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/deploybot/deploybot/deployer"
)

// Ref is one change a person asked for: its number and, when they pasted
// a URL of a particular patch set, that patch set.
type Ref struct {
	Text     string // as typed
	Number   int
	PatchSet int // 0 when the ref names no patch set
}

var (
	plainNumber = regexp.MustCompile(`^[1-9][0-9]{0,9}$`)
	changeIDRe  = regexp.MustCompile(`^I[0-9a-fA-F]{40}$`)
	// The paths Gerrit's web UIs produce, after the site's base path:
	//   /123  /c/123  /c/123/4  /c/<project>/+/123  /c/<project>/+/123/4
	// each with or without a trailing slash. The old UI puts the same
	// after a "#".
	uiPath = []*regexp.Regexp{
		regexp.MustCompile(`^/([1-9][0-9]{0,9})/?$`),
		regexp.MustCompile(`^/c/([1-9][0-9]{0,9})(?:/([1-9][0-9]{0,5}))?/?$`),
		regexp.MustCompile(`^/c/[^#?]+/\+/([1-9][0-9]{0,9})(?:/([1-9][0-9]{0,5}))?/?$`),
	}
)

// ParseRef reads one change reference typed in chat: a change number or a
// URL of the Gerrit at base in any form its web UI produces. Anything else
// is refused with a sentence saying what is accepted.
func ParseRef(text string, base *url.URL) (Ref, error) {
	r := Ref{Text: text}
	if plainNumber.MatchString(text) {
		r.Number, _ = strconv.Atoi(text)
		return r, nil
	}
	usage := fmt.Sprintf("give a change number (like 123456) or its URL on %s", base.Host)
	if changeIDRe.MatchString(text) {
		return r, deployer.Errorf(deployer.EInvalid, "%.12s… is a Change-Id, which can name several changes; %s", text, usage)
	}
	if !strings.HasPrefix(text, "http://") && !strings.HasPrefix(text, "https://") {
		return r, deployer.Errorf(deployer.EInvalid, "%q is not a Gerrit change; %s", clip(text), usage)
	}
	u, err := url.Parse(text)
	if err != nil || u.Host == "" {
		return r, deployer.Errorf(deployer.EInvalid, "%q is not a URL I can read; %s", clip(text), usage)
	}
	if !strings.EqualFold(u.Hostname(), base.Hostname()) || u.Port() != base.Port() {
		return r, deployer.Errorf(deployer.EInvalid, "%s is a link to %s; I deploy changes from %s only", clip(text), u.Host, base.Host)
	}
	p := u.EscapedPath()
	if bp := strings.TrimSuffix(base.EscapedPath(), "/"); bp != "" {
		// The site may live under a path (/r); accept links with or
		// without it.
		if rest, ok := strings.CutPrefix(p, bp); ok && (rest == "" || rest[0] == '/') {
			p = rest
		}
	}
	if f := u.Fragment; strings.HasPrefix(f, "/") && (p == "" || p == "/") {
		p = f // the old UI: /r/#/c/123/
	}
	for _, re := range uiPath {
		if m := re.FindStringSubmatch(p); m != nil {
			r.Number, _ = strconv.Atoi(m[1])
			if len(m) > 2 && m[2] != "" {
				r.PatchSet, _ = strconv.Atoi(m[2])
			}
			return r, nil
		}
	}
	return r, deployer.Errorf(deployer.EInvalid, "%s does not link to a change; %s", clip(text), usage)
}

// clip shortens what a person typed before it is repeated in chat, at a
// character boundary: cutting inside a character would put invalid UTF-8
// in the channel.
func clip(s string) string {
	if len(s) <= 80 {
		return s
	}
	cut := 80
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// CheckRef implements deployer.RefChecker: a ref must be a change number
// or a link to a change on this Gerrit before it is queued.
func (s *Source) CheckRef(ref string) error {
	_, err := ParseRef(ref, s.base)
	return err
}
