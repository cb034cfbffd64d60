package gerrit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// magicPrefix starts every JSON body Gerrit sends, so that a browser that
// loads the response as a script runs nothing (Gerrit's XSSI protection).
const magicPrefix = ")]}'"

// maxBody bounds a response read into memory: a broken proxy must not
// make the bot read without end.
const maxBody = 16 << 20

// client speaks Gerrit's REST API. With a username every call goes under
// /a/ with HTTP basic auth, which is how Gerrit tells authenticated calls
// apart; without one only anonymous reads work.
type client struct {
	base     *url.URL // the Gerrit root, e.g. https://gerrit.example.org/r
	username string
	password string
	http     *http.Client
}

// apiError is a REST call that Gerrit answered with an error status. Its
// body is Gerrit's plain-text reason, kept for the log only.
type apiError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("gerrit: %s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), e.Body)
}

// statusOf returns the HTTP status of a failed call, 0 for other errors.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// do calls method on path (which starts with /changes/...) with query,
// sends in as JSON when not nil, and decodes the answer into out when not
// nil.
func (c *client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	root := strings.TrimSuffix(c.base.String(), "/")
	if c.username != "" {
		root += "/a"
	}
	// path is built from numbers and fixed words only, never from text a
	// person typed.
	full, err := url.Parse(root + path)
	if err != nil {
		return fmt.Errorf("gerrit: bad path %q: %w", path, err)
	}
	if query != nil {
		full.RawQuery = query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("gerrit: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, full.String(), body)
	if err != nil {
		return fmt.Errorf("gerrit: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	}
	if c.username != "" {
		req.SetBasicAuth(c.username, c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// The URL carries no secret (basic auth is a header), so the
		// error may be logged as is.
		return fmt.Errorf("gerrit: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("gerrit: %s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := strings.TrimSpace(string(data))
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return &apiError{Method: method, Path: path, Status: resp.StatusCode, Body: msg}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	data = stripMagic(data)
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("gerrit: %s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// stripMagic removes the )]}' line that starts Gerrit's JSON answers.
func stripMagic(data []byte) []byte {
	if rest, ok := bytes.CutPrefix(data, []byte(magicPrefix)); ok {
		return rest
	}
	return data
}

// changeOptions are the details every change lookup asks for.
var changeOptions = url.Values{"o": {"CURRENT_REVISION", "CURRENT_COMMIT", "LABELS", "DETAILED_LABELS", "DETAILED_ACCOUNTS"}}

// changePath is the REST path of change number n.
func changePath(n int, rest ...string) string {
	return "/changes/" + strconv.Itoa(n) + strings.Join(rest, "")
}

func (c *client) change(ctx context.Context, n int) (*ChangeInfo, error) {
	var ci ChangeInfo
	if err := c.do(ctx, http.MethodGet, changePath(n), changeOptions, nil, &ci); err != nil {
		return nil, err
	}
	return &ci, nil
}

// revisions returns every patch set of change n (o=ALL_REVISIONS), with
// their numbers and kinds.
func (c *client) revisions(ctx context.Context, n int) (map[string]RevisionInfo, error) {
	var ci ChangeInfo
	if err := c.do(ctx, http.MethodGet, changePath(n), url.Values{"o": {"ALL_REVISIONS"}}, nil, &ci); err != nil {
		return nil, err
	}
	return ci.Revisions, nil
}

func (c *client) query(ctx context.Context, q string) ([]ChangeInfo, error) {
	v := url.Values{"q": {q}}
	for _, o := range changeOptions["o"] {
		v.Add("o", o)
	}
	var out []ChangeInfo
	if err := c.do(ctx, http.MethodGet, "/changes/", v, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *client) mergeable(ctx context.Context, n int, rev string) (bool, error) {
	var mi MergeableInfo
	if err := c.do(ctx, http.MethodGet, changePath(n, "/revisions/", rev, "/mergeable"), nil, nil, &mi); err != nil {
		return false, err
	}
	return mi.Mergeable, nil
}

func (c *client) related(ctx context.Context, n int, rev string) ([]RelatedChangeAndCommitInfo, error) {
	var ri RelatedChangesInfo
	if err := c.do(ctx, http.MethodGet, changePath(n, "/revisions/", rev, "/related"), nil, nil, &ri); err != nil {
		return nil, err
	}
	return ri.Changes, nil
}

func (c *client) submittedTogether(ctx context.Context, n int) ([]ChangeInfo, error) {
	var out []ChangeInfo
	if err := c.do(ctx, http.MethodGet, changePath(n, "/submitted_together"), nil, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *client) review(ctx context.Context, n int, rev string, in ReviewInput) error {
	return c.do(ctx, http.MethodPost, changePath(n, "/revisions/", rev, "/review"), nil, in, nil)
}

// revert reverts change n of project: POST /changes/<project>~<n>/revert,
// the identifier Gerrit's REST documentation recommends (the project's
// slashes URL-encoded inside the one path segment).
func (c *client) revert(ctx context.Context, project string, n int, message string) (*ChangeInfo, error) {
	path := changePath(n, "/revert")
	if project != "" {
		path = "/changes/" + url.PathEscape(project) + "~" + strconv.Itoa(n) + "/revert"
	}
	var ci ChangeInfo
	if err := c.do(ctx, http.MethodPost, path, nil, RevertInput{Message: message}, &ci); err != nil {
		return nil, err
	}
	return &ci, nil
}

func (c *client) messages(ctx context.Context, n int) ([]ChangeMessageInfo, error) {
	var out []ChangeMessageInfo
	if err := c.do(ctx, http.MethodGet, changePath(n, "/messages"), nil, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}
