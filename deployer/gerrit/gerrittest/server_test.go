package gerrittest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer/gerrit"
)

// get calls the fake's REST API anonymously and decodes the answer.
func get(t *testing.T, s *Server, path string, out any) int {
	t.Helper()
	resp, err := http.Get(s.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(strings.TrimPrefix(string(b), ")]}'")), out); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return resp.StatusCode
}

// TestProjectsAndSubscription plays a MediaWiki-shaped Gerrit: core's
// release branch with extension Foo subscribed at extensions/Foo. Changes
// are found by every documented identifier, only in their own project; a
// merge in Foo moves core's gitlink at once, later, or never, as set.
func TestProjectsAndSubscription(t *testing.T) {
	s := New(t, Options{Project: "operations/mediawiki-config", Branch: "master"})
	s.AddProject("mediawiki/core", "wmf/1", map[string]string{"index.php": "core\n"})
	s.AddProject("mediawiki/extensions/Foo", "wmf/1", map[string]string{"Foo.php": "foo\n"})
	s.AddSubmodule("mediawiki/core", "wmf/1", "extensions/Foo", "mediawiki/extensions/Foo", "wmf/1")
	if got, want := s.Gitlink("mediawiki/core", "wmf/1", "extensions/Foo"), s.TipOf("mediawiki/extensions/Foo", "wmf/1"); got != want {
		t.Fatalf("gitlink %s, want Foo's tip %s", got, want)
	}

	n := s.UploadTo("mediawiki/extensions/Foo", "wmf/1", "bob", "", map[string]string{"Foo.php": "foo 2\n"}, "Foo: fix")
	var ci gerrit.ChangeInfo
	for _, id := range []string{strconv.Itoa(n), url.PathEscape("mediawiki/extensions/Foo") + "~" + strconv.Itoa(n),
		url.PathEscape("mediawiki/extensions/Foo") + "~" + url.PathEscape("wmf/1") + "~" + changeID(n)} {
		if code := get(t, s, "/changes/"+id, &ci); code != http.StatusOK || ci.Number != n || ci.Project != "mediawiki/extensions/Foo" || ci.Branch != "wmf/1" {
			t.Errorf("GET /changes/%s: %d %+v", id, code, ci)
		}
	}
	if code := get(t, s, "/changes/"+url.PathEscape("mediawiki/core")+"~"+strconv.Itoa(n), &ci); code != http.StatusNotFound {
		t.Errorf("change %d found under another project: %d", n, code)
	}
	var found []gerrit.ChangeInfo
	get(t, s, "/changes/?q=project:mediawiki/extensions/Foo+branch:wmf/1+status:open", &found)
	if len(found) != 1 || found[0].Number != n {
		t.Errorf("query found %+v", found)
	}

	// At once.
	if err := s.Submit(n); err != nil {
		t.Fatal(err)
	}
	if got := s.Gitlink("mediawiki/core", "wmf/1", "extensions/Foo"); got != s.Revision(n) {
		t.Errorf("after the merge core points Foo at %.10s, want the merged %.10s", got, s.Revision(n))
	}
	// Later.
	s.SetSubscriptionDelay(200 * time.Millisecond)
	m := s.UploadTo("mediawiki/extensions/Foo", "wmf/1", "bob", "", map[string]string{"Foo.php": "foo 3\n"}, "Foo: again")
	if err := s.Submit(m); err != nil {
		t.Fatal(err)
	}
	if s.Gitlink("mediawiki/core", "wmf/1", "extensions/Foo") != s.Revision(n) {
		t.Errorf("the delayed update happened at once")
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Gitlink("mediawiki/core", "wmf/1", "extensions/Foo") != s.Revision(m) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Gitlink("mediawiki/core", "wmf/1", "extensions/Foo") != s.Revision(m) {
		t.Errorf("the delayed update never happened")
	}
	// Never.
	s.SetSubscriptionDelay(-1)
	k := s.UploadTo("mediawiki/extensions/Foo", "wmf/1", "bob", "", map[string]string{"Foo.php": "foo 4\n"}, "Foo: lost")
	if err := s.Submit(k); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if s.Gitlink("mediawiki/core", "wmf/1", "extensions/Foo") != s.Revision(m) {
		t.Errorf("the gitlink moved with subscriptions off")
	}
	// A revert is a change of the reverted change's project and branch.
	rv := s.Revert(n, "")
	get(t, s, "/changes/"+strconv.Itoa(rv), &ci)
	if ci.Project != "mediawiki/extensions/Foo" || ci.Branch != "wmf/1" || ci.RevertOf != n {
		t.Errorf("revert %d is %s %s (revert of %d)", rv, ci.Project, ci.Branch, ci.RevertOf)
	}
	if s.TipOf("operations/mediawiki-config", "master") == "" || s.TipOf("mediawiki/core", "master") != "" {
		t.Errorf("branches mixed up between projects")
	}
}
