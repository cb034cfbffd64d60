package bot

import (
	"strings"

	"github.com/deploybot/deploybot/deployer"
)

// withTestURLs adds where to test to the "test it there" ping and its
// reminder: the testservers' URLs (hosts[].url in the configuration), so
// the submitter does not have to look them up.
func (b *Bot) withTestURLs(n deployer.Notice) deployer.Notice {
	if len(b.TestURLs) == 0 || (n.Kind != deployer.NoticeVerify && n.Kind != deployer.NoticeReminder) {
		return n
	}
	var parts []string
	for _, h := range b.TestURLs {
		parts = append(parts, h.URL+" ("+h.Name+")")
	}
	first, rest, _ := strings.Cut(n.Text, "\n")
	n.Text = first + "; test at " + strings.Join(parts, ", ")
	if rest != "" {
		n.Text += "\n" + rest
	}
	return n
}

// TestURL is a testserver and the URL people test it at.
type TestURL struct{ Name, URL string }
