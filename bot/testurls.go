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
	// The ping names the hosts already; the URLs follow in their order.
	for _, h := range b.TestURLs {
		parts = append(parts, h.URL)
	}
	first, rest, _ := strings.Cut(n.Text, "\n")
	where := strings.Join(parts, ", ")
	if i := strings.Index(strings.ToLower(first), "test it there"); i >= 0 {
		end := i + len("test it there")
		first = first[:end] + " (" + where + ")" + first[end:]
	} else {
		first += " (" + where + ")"
	}
	n.Text = first
	if rest != "" {
		n.Text += "\n" + rest
	}
	return n
}

// TestURL is a testserver and the URL people test it at.
type TestURL struct{ Name, URL string }
