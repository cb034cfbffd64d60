package bot

import (
	"testing"

	"github.com/deploybot/deploybot/deployer"
)

func TestThePingSaysWhereToTest(t *testing.T) {
	b := &Bot{TestURLs: []TestURL{{"ts1", "http://ts1.example/"}, {"ts2", "http://ts2.example/"}}}
	for _, tc := range []struct {
		n    deployer.Notice
		want string
	}{
		{deployer.Notice{Kind: deployer.NoticeVerify, Text: "x is on ts1, ts2: test it there (waiting 1m)\nmore"},
			"x is on ts1, ts2: test it there (http://ts1.example/, http://ts2.example/) (waiting 1m)\nmore"},
		{deployer.Notice{Kind: deployer.NoticeReminder, Text: "reminder: x waits for you"},
			"reminder: x waits for you (http://ts1.example/, http://ts2.example/)"},
		{deployer.Notice{Kind: deployer.NoticeVerify, Text: "on ts1 now: x. Test it there (waiting 1m). Next: ..."},
			"on ts1 now: x. Test it there (http://ts1.example/, http://ts2.example/) (waiting 1m). Next: ..."},
		{deployer.Notice{Kind: deployer.NoticeProgress, Text: "test it there"}, "test it there"},
	} {
		if got := b.withTestURLs(tc.n).Text; got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.n.Kind, got, tc.want)
		}
	}
}
