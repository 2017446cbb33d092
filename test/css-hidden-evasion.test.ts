// Styles that hide text read as a browser reads them, where mailward read them otherwise: CSS escapes a browser
// decodes (lib/util/css-escape.ts), and a background image a later declaration removes (lib/util/html.ts).
import assert from 'node:assert/strict';
import { analyseHtml } from '../lib/util/html';
import { unescapeValue } from '../lib/util/css-escape';
import { unescapedStyle } from '../lib/util/css-style';

const words = 'cheap meadow pills';
/** Whether the words read as hidden and not as shown, under `html` wrapped around them. */
const hidden = (open: string, close = '</p>'): boolean => {
  const info = analyseHtml(`<p>Hello</p>${open}${words}${close}`);
  return /meadow/.test(info.hiddenText) && !/meadow/.test(info.text);
};

describe('CSS escapes are decoded as a browser decodes them', () => {
  it('in property names: disp\\lay, d\\69splay, visibilit\\79, an escape of a capital', () => {
    for (const style of ['disp\\lay:none', 'd\\69splay:none', 'd\\000069 splay:none', '\\64isplay:none', 'DISP\\4c AY:none', 'visibilit\\79:hidden', 'font-si\\7a e:0']) {
      assert.equal(hidden(`<p style="${style}">`), true, style);
    }
  });

  it('in keywords, units and # colours: n\\6f ne, 0\\70x, #\\66\\66\\66, whit\\65, a function name', () => {
    for (const style of ['display:\\6e one', 'display:n\\one', 'visibility:hidd\\65n', 'font-size:0\\70x', 'font-size:1\\70 x', 'color:#\\66\\66\\66', 'color:whit\\65', 'color:\\72gb(255,255,255)', 'opacity:0;opacity:\\30']) {
      assert.equal(hidden(`<p style="${style}">`), true, style);
    }
    assert.equal(hidden(`<div style="b\\61ckground:#000"><p style="color:#fff;color:#\\30 00">`, '</p></div>'), false, 'black on black: the hash takes an escaped digit');
  });

  it('an escape never makes a number, and an escaped `!` or `(` is part of a name: the declaration is dropped, as in a browser', () => {
    // `\30` is the name "0": font-size:\30 is no size, the 16px before it wins.
    for (const style of ['font-size:\\30', 'font-size:\\30 px', 'opacity:\\30', 'color:\\#fff', 'color:rgb\\(255,255,255)', 'display:none \\!important;display:block', 'visibility:hidd\\en']) {
      assert.equal(hidden(`<p style="font-size:16px;${style}">`), false, style);
    }
    assert.equal(hidden('<p style="display:none ! \\69mportant;display:block">'), true, 'an escaped letter of important counts');
    assert.equal(unescapeValue('1\\65 3'), '1\\?e3', 'the unit e3, no exponent');
  });

  it('a unit an escape starts with a digit is no unit a browser knows: 1\\30px is 1 of the unit "0px", not 10px', () => {
    // The declaration is dropped, the hiding one before it wins.
    for (const style of ['font-size:0;font-size:1\\30px', 'font-size:0;font-size:1\\30', 'opacity:0;opacity:1\\30', 'font-size:0;font-size:2\\31 px']) {
      assert.equal(hidden(`<p style="${style}">`), true, style);
    }
    assert.equal(unescapeValue('1\\30px'), '1\\?0px');
    assert.equal(unescapeValue('1\\2d 5px'), '1\\?-5px', 'a unit "-5px", not the numbers 1 and -5px');
    assert.equal(unescapeValue('0\\70x'), '0px', 'a unit starting with a letter reads plain (guard)');
  });

  it('an unquoted url() whose name is escaped is one token: a quote in it opens no string', () => {
    assert.equal(hidden('<p style="background:u\\72l(a&quot;b);display:none">'), true);
  });

  it('an unquoted url() is one token however many blanks open it: a quote in it opens no string', () => {
    for (const blanks of [' ', ' '.repeat(100), '\n'.repeat(300)]) {
      assert.equal(hidden(`<p style="background:url(${blanks}a&quot;b);display:none">`), true, `${blanks.length} blanks`);
      assert.equal(hidden(`<p style="background:u\\72l(${blanks}a&quot;b);display:none">`), true, `${blanks.length} blanks, escaped`);
    }
    assert.equal(hidden(`<p style="background:url(${' '.repeat(100)}&quot;a;display:none&quot;)">`), false, 'a quoted url() holds its `;` (guard)');
    assert.equal(hidden('<p style="background:url(\u00a0&quot;b);display:none">'), true, 'a no-break space is no CSS blank: the url is unquoted');
  });

  it('text stays as written where there is no escape, and font names in escapes read (guards)', () => {
    assert.equal(hidden('<p style="font:12px \\5FAE\\8F6F\\96C5\\9ED1">'), false);
    assert.equal(unescapedStyle('font-family:\\5FAE\\8F6F\\96C5\\9ED1;color:red'), 'font-family:微软雅黑;color:red');
    assert.equal(unescapedStyle('font-family:"a\\"b;c";display:n\\6f ne'), 'font-family:"a\\"b;c";display:none');
    assert.equal(hidden('<p style="display:bl\\6f ck">'), false);
  });

  it('in linear time: 100,000 escapes are no hang', function () {
    this.timeout(20000);
    // Style attributes are cut at 2 KB before they are read (html.ts): the splitter and the decoder alone take the long one.
    for (const run of ['\\ ', '\\75', 'u\\75 ', ' \\75 rl(x"y) ', '1\\65 ', '#\\66 ']) {
      assert.match(unescapedStyle(`x:${run.repeat(100_000)};display:n\\6f ne`), /;display:none$/, run);
    }
  });
});

describe('a background image a later declaration removes paints nothing', () => {
  const onWhite = (style: string): boolean => hidden(`<div style="${style}"><p style="color:#fff">`, '</p></div>');
  it('background-image:none, or a background shorthand without one, after a gradient or a picture', () => {
    for (const style of [
      'background:#fff linear-gradient(#000,#333);background-image:none',
      'background-image:linear-gradient(#000,#333);background-image:none',
      'background:linear-gradient(#000,#333);background:#fff',
      'background:#fff url(https://example.com/dark.jpg);background-image:none',
    ]) {
      assert.equal(onWhite(style), true, style);
    }
  });

  it('the gradient or picture still counts where it wins, and a value a browser drops removes nothing (guards)', () => {
    for (const style of [
      'background:#fff linear-gradient(#000,#333)',
      'background-image:none;background:#fff linear-gradient(#000,#333)',
      'background:#fff linear-gradient(#000,#333);background-image:junk',
      'background:#fff linear-gradient(#000,#333);background:junk',
      'background:#000 linear-gradient(#000,#333);background-image:none',
      'background:#fff url(https://example.com/dark.jpg);background-image:none;background-image:url(https://example.com/dark.jpg)',
    ]) {
      assert.equal(onWhite(style), false, style);
    }
  });
});

describe('a background shorthand a browser takes is never dropped (the dark one before it would then read as painted)', () => {
  /** Black text on the element whose style ends with `background`, after a black background. */
  const blackOnIt = (background: string): boolean => hidden(`<div style="background:#000;${background}"><p style="color:#000">`, '</p></div>');
  it('system colours and numbers with an exponent are parts a browser takes', () => {
    for (const background of ['background:Canvas', 'background:ButtonFace url(x.png) no-repeat', 'background:window', 'background:#fff url(x.png) 1e1px 0', 'background:#fff 5E-1% 0']) {
      assert.equal(blackOnIt(background), false, background);
    }
  });

  it('common shorthands of newsletters are taken (guards)', () => {
    for (const background of [
      'background:#fff url(x.png) 50% / cover no-repeat',
      'background:#FFF URL(x.png) CENTER CENTER / COVER NO-REPEAT',
      'background:#fff url(x.png) left top / 600px 300px no-repeat scroll padding-box border-box',
      'background:rgb(255 255 255 / 100%)',
      'background:#ffffff none repeat scroll 0 0 !important',
      'background:url(x.png)no-repeat#fff',
      'background:#fff url(a.png) no-repeat right 10px top 20px',
      'background:var(--x)',
    ]) {
      assert.equal(blackOnIt(background), false, background);
    }
    assert.equal(blackOnIt('background:#fff url(x.png) junk'), true, 'a word no browser knows: dropped');
  });
});
