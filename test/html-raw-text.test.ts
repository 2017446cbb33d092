// Raw-text elements read as browsers read them (lib/util/html-raw-text.ts): what `<iframe>`, `<noembed>`,
// `<noframes>` and `<xmp>` hold is text to their end tag, so a `<!--`, a `<style>` or an open quote inside
// cannot swallow the message after it. htmlparser2 read it as markup: the spam after it was read nowhere.
import assert from 'node:assert/strict';
import { unshownOpenAt } from '../lib/mime/padding';
import { Parser, Tokenizer } from 'htmlparser2';
import { analyseHtml } from '../lib/util/html';
import { RawTextTokenizer } from '../lib/util/html-raw-text';

const spam = 'cheap meadow pills';

describe('HTML raw-text elements: their content ends at their end tag, as in a browser', () => {
  it('a comment opened inside iframe, noembed, noframes or xmp does not hide what follows', () => {
    for (const tag of ['iframe', 'noembed', 'noframes', 'xmp', 'IFRAME']) {
      const info = analyseHtml(`<p>Hello</p><${tag}><!--</${tag}><p>${spam}</p><p>more</p>`);
      assert.match(info.text, /cheap meadow pills/, tag);
      assert.equal(info.hiddenText, '', tag);
    }
  });

  it('nor does a style, script or title start tag, or an open attribute quote, inside one', () => {
    for (const inner of ['<style>', '<script>', '<title>', '<textarea>', '<a title="', '<![CDATA[']) {
      const info = analyseHtml(`<iframe src="x">${inner}</iframe ><div>${spam}</div>`);
      assert.match(info.text, /cheap meadow pills/, inner);
    }
  });

  it('markup inside one is not read as markup: a hiding tag inside xmp is shown text, an iframe\'s content stays unread', () => {
    assert.equal(analyseHtml(`<xmp><b hidden>${spam}</b></xmp>`).hiddenText, '');
    assert.match(analyseHtml(`<xmp><b hidden>${spam}</b></xmp>`).text, /<b hidden>cheap meadow pills<\/b>/);
    const iframe = analyseHtml(`<iframe><p style="display:none">${spam}</p></iframe><p>shown</p>`);
    assert.equal(iframe.hiddenText, '');
    assert.doesNotMatch(iframe.text, /meadow/);
    assert.match(iframe.text, /shown/);
  });

  it('a self-closing slash does not end raw text in HTML (browsers ignore it), but does in SVG', () => {
    assert.match(analyseHtml(`<iframe/><!--</iframe><p>${spam}</p>`).text, /cheap meadow pills/);
    assert.match(analyseHtml(`<style/><!--</style><p>${spam}</p>`).text, /cheap meadow pills/);
    assert.doesNotMatch(analyseHtml(`<style/>p{}</style><p>${spam}</p>`).text, /p\{\}/, 'the style text is not shown');
    assert.match(analyseHtml(`<svg><title/></svg><p>${spam}</p>`).text, /cheap meadow pills/, 'svg title closes itself');
  });

  it('an end tag with a slash after its name (`</iframe/>`) ends raw text, as in a browser: what follows is read', () => {
    for (const tag of ['iframe', 'noembed', 'noframes', 'xmp', 'style', 'script', 'title', 'textarea']) {
      const info = analyseHtml(`<p>Hello</p><${tag}>x</${tag}/><p>${spam}</p>`);
      assert.match(info.text, /cheap meadow pills/, tag);
      assert.match(analyseHtml(`<${tag}>x</${tag.toUpperCase()}/ junk><p>${spam}</p>`).text, /cheap meadow pills/, `${tag}: upper case, junk after the slash`);
    }
    // Only the element's own end tag: a longer name goes on being raw text.
    assert.doesNotMatch(analyseHtml(`<iframe></iframex/><p>${spam}</p>`).text, /meadow/);
  });

  it('inside SVG or MathML these names are markup, as in a browser: a comment in one hides its text', () => {
    for (const [open, close] of [['<svg>', '</svg>'], ['<math>', '</math>']]) {
      for (const tag of ['iframe', 'noembed', 'noframes', 'xmp']) {
        const info = analyseHtml(`<p>Hello</p>${open}<${tag}><!--</${tag}>${spam}-->${close}<p>after</p>`);
        assert.doesNotMatch(info.text, /meadow/, `${open}${tag}`);
        assert.match(info.text, /after/, `${open}${tag}`);
      }
    }
    // An HTML integration point (foreignObject) holds HTML again: an iframe there is raw text.
    assert.match(analyseHtml(`<svg><foreignObject><iframe><!--</iframe><p>${spam}</p></foreignObject></svg>`).text, /meadow/);
    // So does an HTML element that breaks out of SVG in a browser (`<div>`, `<p>`, `<font color>`...): not read as a comment.
    for (const breakout of ['<div>', '<p>', '<span>', '<table>', '<b>', '<font color="red">']) {
      assert.match(analyseHtml(`<svg>${breakout}<iframe><!--</iframe><p>${spam}</p>--></svg>`).text, /meadow/, breakout);
      assert.match(analyseHtml(`<math><mrow>${breakout}<xmp><!--</xmp><p>${spam}</p>--></math>`).text, /meadow/, `math ${breakout}`);
      assert.match(analyseHtml(`<svg>${breakout}<style/><!--</style><p>${spam}</p>--></svg>`).text, /meadow/, `${breakout}: /> ignored, as in HTML`);
    }
  });

  it('a breakout closes the SVG or MathML for good, as in a browser: an iframe after the breakout element is raw text however deep', () => {
    // <p> pops the <svg> in a browser: the iframe after </p> is HTML (raw text), its "comment" is text and the <p> after it shows.
    assert.match(analyseHtml(`<svg><p></p><iframe><!--</iframe><p>${spam}</p>--></svg>`).text, /meadow/, 'after the breakout ended');
    assert.match(analyseHtml(`<math><mrow><b>x</b><xmp><!--</xmp><p>${spam}</p>--></math>`).text, /meadow/, 'math');
    // More than 32 HTML elements inside the breakout one: still HTML.
    assert.match(analyseHtml(`<svg><div>${'<section>'.repeat(40)}<iframe><!--</iframe><p>${spam}</p>--></svg>`).text, /meadow/, 'deep');
    // A nested SVG in an HTML integration point: the breakout closes the inner SVG only, the outer is SVG again after foreignObject.
    const nested = analyseHtml(`<svg><foreignObject><svg><p>a</p></svg></foreignObject><iframe><!--</iframe>${spam}--></svg><p>after</p>`);
    assert.doesNotMatch(nested.text, /meadow/, 'outer SVG');
    assert.match(nested.text, /after/);
  });

  it('<font> breaks out of SVG or MathML only with color, face or size, as in a browser', () => {
    for (const font of ['<font>', '<font class="x">', '<font colour="red">']) {
      assert.doesNotMatch(analyseHtml(`<svg>${font}<iframe><!--</iframe><p>${spam}</p>--></svg><p>after</p>`).text, /meadow/, font);
    }
    for (const font of ['<font color="red">', '<font class=x SIZE=2>', '<font face>', '<FONT Color=red/>']) {
      assert.match(analyseHtml(`<svg>${font}<iframe><!--</iframe><p>${spam}</p>--></svg>`).text, /meadow/, font);
    }
  });

  it('upper-case breakout names break out too', () => {
    assert.match(analyseHtml(`<SVG><DIV><IFRAME><!--</IFRAME><P>${spam}</P>--></SVG>`).text, /meadow/);
  });

  it('htmlparser2\'s own Tokenizer is left as it is: other readers in the process (dom-serializer, domutils) read as before (guard)', () => {
    const own = (cls: typeof Tokenizer, name: string): unknown => Object.getOwnPropertyDescriptor(cls.prototype, name)?.value;
    for (const name of ['stateBeforeTagName', 'stateInSelfClosingTag', 'stateInSpecialTag', 'stateInAttributeName']) {
      assert.notEqual(own(RawTextTokenizer, name), undefined, name);
      assert.notEqual(own(RawTextTokenizer, name), own(Tokenizer, name), name);
    }
    let text = '';
    const parser = new Parser({ ontext: (data) => (text += data) }, { decodeEntities: true });
    parser.end(`<iframe><!--</iframe>${spam}--><p>after</p>`);
    assert.equal(text, 'after', 'a plain Parser reads the comment as htmlparser2 does');
  });

  it('a longer tag name is no raw-text element, and one never closed holds the rest (guards)', () => {
    assert.doesNotMatch(analyseHtml(`<iframes><!-- x --><p>${spam}</p>`).text, /<!--/);
    assert.doesNotMatch(analyseHtml(`<p>shown</p><iframe>${spam}<p>x`).text, /meadow/);
  });

  it('past the nesting limit too (the tokenizer alone reads the rest)', function () {
    this.timeout(20000);
    const deep = '<div>'.repeat(600);
    const info = analyseHtml(`${deep}<iframe><!--</iframe><p>${spam}</p>`);
    assert.equal(info.deep, true);
    assert.match(info.text, /cheap meadow pills/);
  });

  it('the MIME tail reads a part cut inside one as the whole part reads (lib/mime/padding.ts)', () => {
    for (const tag of ['iframe', 'noembed', 'noframes']) {
      const before = `<p>Hello</p><${tag} src="x"><!-- ${'x'.repeat(100)}`;
      const after = `</${tag}><p>${spam}</p>`;
      const opener = unshownOpenAt(before);
      assert.match(opener, new RegExp(`^<${tag}>`), tag);
      assert.match(analyseHtml(opener + after).text, /cheap meadow pills/, tag);
      assert.doesNotMatch(analyseHtml(opener + 'words inside').text, /words/, `${tag}: still inside`);
    }
  });
});
