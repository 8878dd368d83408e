'use strict';
// Benchmark peer: the civicflow helpline behaviour built on Botkit 4.15 (botbuilder dialogs) and
// its web adapter, answering POST /v1/messages {"user", "text"} in the HTTP response.
//
//   node bot.js [--port 3000]        # prints "listening on 127.0.0.1:PORT" once ready
//
// What it does, like flows/main.yaml, flows/passport.yaml and the start of
// flows/birth_certificate.yaml:
//   - main menu (1 passport, 2 birth certificate, ...) with the main FAQ (office hours, thanks);
//   - passport: topic menus and the 21 passport FAQ entries (keywords with synonyms, phrases,
//     patterns; the best-scoring entry answers), then "Anything else about passports?";
//   - a three-step form: child's name (letters), date of birth (a real DD-MM-YYYY date, leap
//     years included, not in the future), district;
//   - MENU at any point cancels what is open and shows the main menu;
//   - per-user state in memory: Botkit's default MemoryStorage (one JSON document per
//     conversation, the conversation id being the user).
//
// Every message goes through Botkit's own machinery: the web adapter's processActivity (webhook
// mode collects the turn's outgoing activities into the HTTP response), Botkit's interrupts and
// triggers, and BotkitConversation dialogs on botbuilder-dialogs with the state saved to storage.
// The thin layer around it (see README.md) only (a) marks the request as a message (the adapter
// treats a body without "type": "message" as an event) and (b) reshapes the adapter's array of
// outgoing messages into civicflow's response shape {"user", "replies", "session"} so one
// validation script checks both.
const http = require('http');
const express = require('express');
const { Botkit, BotkitConversation } = require('botkit');
const { WebAdapter } = require('botbuilder-adapter-web');
const content = require('./content.json');

// ---- FAQ matching (the same inputs as the flows: keywords with synonyms, phrases, patterns) ----

function normalize(text) {
    return text
        .toLowerCase()
        .replace(/[^\p{L}\p{M}\p{N}]+/gu, ' ')
        .trim();
}

// One matcher per flow: word -> canonical keyword through the synonyms, then a score per entry
// (a keyword 1, a phrase 2, a pattern 2); the best score answers, ties go to the first entry.
function makeMatcher(section) {
    const canonical = new Map();
    for (const [key, words] of Object.entries(section.synonyms || {})) {
        canonical.set(key, key);
        for (const w of words) canonical.set(normalize(w), key);
    }
    const entries = section.faq.map((e) => ({
        id: e.id,
        answer: e.answer,
        keywords: new Set(e.keywords.map((k) => canonical.get(normalize(k)) || normalize(k))),
        phrases: e.phrases.map(normalize),
        patterns: e.patterns.map((p) => {
            const insensitive = p.startsWith('(?i)');
            return new RegExp(insensitive ? p.slice(4) : p, insensitive ? 'iu' : 'u');
        }),
    }));
    return (text) => {
        const norm = normalize(text);
        const words = norm.split(' ').map((w) => canonical.get(w) || w);
        const padded = ` ${norm} `;
        let best = null;
        let bestScore = 0;
        for (const e of entries) {
            let score = 0;
            for (const w of words) if (e.keywords.has(w)) score += 1;
            for (const p of e.phrases) if (padded.includes(` ${p} `)) score += 2;
            for (const r of e.patterns) if (r.test(text)) score += 2;
            if (score > bestScore) {
                best = e;
                bestScore = score;
            }
        }
        return best;
    };
}

const mainFaq = makeMatcher(content.main);
const passportFaq = makeMatcher(content.passport);
const passportAnswers = new Map(content.passport.faq.map((e) => [e.id, e.answer]));

// ---- Validators (as in flows/birth_certificate.yaml) ----

const kName = /^[\p{L}\p{M}][\p{L}\p{M} .'-]{1,59}$/u;
const kDistrict = /^[\p{L}\p{M}][\p{L}\p{M} .-]{1,39}$/u;

// A real calendar date written DD-MM-YYYY (leap years: divisible by 4, except centuries not
// divisible by 400), not after today.
function validDateOfBirth(text) {
    const m = /^(\d{2})-(\d{2})-(\d{4})$/.exec(text.trim());
    if (!m) return 'invalid';
    const day = Number(m[1]);
    const month = Number(m[2]);
    const year = Number(m[3]);
    if (year < 1900 || month < 1 || month > 12 || day < 1) return 'invalid';
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
    if (day > days) return 'invalid';
    const now = new Date();
    const today = now.getFullYear() * 10000 + (now.getMonth() + 1) * 100 + now.getDate();
    if (year * 10000 + month * 100 + day > today) return 'future';
    return 'ok';
}

// ---- Dialogs ----

const adapter = new WebAdapter({ noServer: true });
const app = express();
app.set('env', 'production');
app.set('etag', false);
app.set('x-powered-by', false);
app.use(express.json({ limit: '64kb' }));
app.use(civicflowShape);

const controller = new Botkit({
    adapter,
    webserver: app,
    webhook_uri: '/v1/messages',
    disable_console: true,
});

// A prompt that also tells the client where the conversation is (the reply's "session").
function prompt(text, flow, state, options) {
    const line = { text, channelData: { flow, state } };
    if (options) line.quick_replies = options.map((o) => ({ title: o.title, payload: o.id }));
    return line;
}

const kMainOptions = [
    { id: '1', title: 'Passport services' },
    { id: '2', title: 'Birth certificate' },
    { id: '3', title: 'Application status' },
    { id: '4', title: 'Register a complaint' },
];

const main = new BotkitConversation('main', controller);
main.say({
    text: 'Namaste! Welcome to the Citizen Services Helpline of the District Administration.',
});
main.addAction('menu');
main.addQuestion(
    prompt(
        'How can we help you? Choose a service, or type what you need.',
        'main',
        'menu',
        kMainOptions
    ),
    [
        {
            pattern: /^\s*(1|passport services?|passport)\s*$/i,
            handler: async (text, convo, bot) => bot.replaceDialog('passport'),
        },
        {
            pattern: /^\s*(2|birth certificate|birth)\s*$/i,
            handler: async (text, convo, bot) => bot.replaceDialog('birth_certificate'),
        },
        {
            default: true,
            handler: async (text, convo, bot) => {
                const hit = mainFaq(text || '');
                await bot.say(
                    hit
                        ? hit.answer
                        : 'Sorry, I did not understand that. Please reply with a number from the menu.'
                );
                await convo.repeat();
            },
        },
    ],
    'choice',
    'menu'
);
controller.addDialog(main);

// Passport: the topic menu, one thread per topic, the FAQ from any of them, then "next".
const passport = new BotkitConversation('passport', controller);
const topics = content.passport.topics;

async function answerPassportFaq(text, convo, bot) {
    const hit = passportFaq(text || '');
    if (!hit) {
        await bot.say('Sorry, I did not understand that. Please choose a number or type a question.');
        await convo.repeat();
        return;
    }
    await bot.say(hit.answer);
    await convo.gotoThread('next');
}

passport.addQuestion(
    prompt(
        'Passport services. Choose a topic, or type your question (for example: tatkal fee).',
        'passport',
        'menu',
        [...topics.map((t, i) => ({ id: String(i + 1), title: t.title })), { id: String(topics.length + 1), title: 'Main menu' }]
    ),
    [
        ...topics.map((t, i) => ({
            pattern: new RegExp(`^\\s*${i + 1}\\s*$`),
            handler: async (text, convo) => convo.gotoThread(`topic_${t.id}`),
        })),
        {
            pattern: new RegExp(`^\\s*${topics.length + 1}\\s*$`),
            handler: async (text, convo, bot) => bot.replaceDialog('main', { thread: 'menu' }),
        },
        { default: true, handler: answerPassportFaq },
    ],
    'topic',
    'default'
);
for (const t of topics) {
    passport.addQuestion(
        prompt(
            `${t.title}. Choose a question:`,
            'passport',
            `topic_${t.id}`,
            t.questions.map((q, i) => ({ id: String(i + 1), title: q.title }))
        ),
        [
            ...t.questions.map((q, i) => ({
                pattern: new RegExp(`^\\s*${i + 1}\\s*$`),
                handler: async (text, convo, bot) => {
                    await bot.say(passportAnswers.get(q.id));
                    await convo.gotoThread('next');
                },
            })),
            { default: true, handler: answerPassportFaq },
        ],
        'question',
        `topic_${t.id}`
    );
}
passport.addQuestion(
    prompt('Anything else about passports?', 'passport', 'next', [
        { id: '1', title: 'Another topic' },
        { id: '2', title: 'Main menu' },
    ]),
    [
        { pattern: /^\s*1\s*$/, handler: async (text, convo) => convo.gotoThread('default') },
        {
            pattern: /^\s*2\s*$/,
            handler: async (text, convo, bot) => bot.replaceDialog('main', { thread: 'menu' }),
        },
        { default: true, handler: answerPassportFaq },
    ],
    'more',
    'next'
);
controller.addDialog(passport);

// The form: three asks, each validated; an invalid answer is explained and asked again.
const form = new BotkitConversation('birth_certificate', controller);
form.say(
    'Birth certificate application. I will ask a few questions about the child. Send MENU to stop and go to the main menu.'
);
function validated(check) {
    return [
        {
            default: true,
            handler: async (text, convo, bot) => {
                const error = check(text || '');
                if (error) {
                    await bot.say(error);
                    await convo.repeat();
                }
            },
        },
    ];
}
form.addQuestion(
    prompt(
        'What is the child\'s full name? If the name is not decided yet, write "Baby of" and the mother\'s name.',
        'birth_certificate',
        'child_name'
    ),
    validated((t) =>
        kName.test(t.trim())
            ? null
            : 'Please write the name in letters only (2 to 60 letters), for example: Aarav Sharma.'
    ),
    'child_name'
);
form.addQuestion(
    prompt(
        "What is the child's date of birth? Write it as DD-MM-YYYY, for example 05-01-2026.",
        'birth_certificate',
        'dob'
    ),
    validated((t) => {
        const v = validDateOfBirth(t);
        if (v === 'invalid')
            return 'That is not a valid date. Please write it as DD-MM-YYYY, for example 05-01-2026.';
        if (v === 'future')
            return 'The date of birth cannot be in the future. Please check the date and write it again.';
        return null;
    }),
    'dob'
);
form.addQuestion(
    prompt('In which district was the child born?', 'birth_certificate', 'district'),
    validated((t) =>
        kDistrict.test(t.trim())
            ? null
            : 'Please write the district name in letters, for example: Lucknow.'
    ),
    'district'
);
form.say(
    'Thank you. Child: {{vars.child_name}}, born {{vars.dob}} in {{vars.district}} district. The registrar will contact you.'
);
// Then back to the main menu (addGotoDialog cannot name the target's thread).
form.addMessage({ action: 'execute_script', execute: { script: 'main', thread: 'menu' } }, 'default');
controller.addDialog(form);

// MENU (or "main menu") anywhere: drop what is open, show the main menu.
controller.interrupts(/^\s*(main\s+)?menu\s*$/i, 'message', async (bot) => {
    await bot.cancelAllDialogs();
    await bot.beginDialog('main', { thread: 'menu' });
});

// A message outside any dialog starts the conversation.
controller.on('message', async (bot) => {
    await bot.beginDialog('main');
});

// ---- The thin HTTP layer ----

// Checks the request like civicflow does (400 with the same error shape), marks it as a message
// for the web adapter, and reshapes the adapter's JSON array of outgoing messages.
function civicflowShape(req, res, next) {
    if (req.method !== 'POST' || req.path !== '/v1/messages') return next();
    const body = req.body;
    if (!body || typeof body !== 'object' || typeof body.user !== 'string' || body.user === '') {
        res.status(400).json({ error: { code: 'missing_user', message: "'user' is required" } });
        return;
    }
    if (typeof body.text !== 'string') {
        res.status(400).json({ error: { code: 'invalid_field', message: "'text' must be a string" } });
        return;
    }
    body.type = 'message';
    const send = res.json.bind(res);
    res.json = (messages) => {
        const replies = [];
        let session = null;
        for (const m of messages) {
            if (m.quick_replies) {
                replies.push({
                    type: 'menu',
                    text: m.text,
                    options: m.quick_replies.map((q) => ({ id: q.payload, title: q.title })),
                });
            } else {
                replies.push({ type: 'text', text: m.text });
            }
            if (m.flow) session = { flow: m.flow, state: m.state };
        }
        return send({ user: body.user, replies, session });
    };
    next();
}

let port = Number(process.env.PORT || 3000);
for (let i = 2; i + 1 < process.argv.length; i += 2)
    if (process.argv[i] === '--port') port = Number(process.argv[i + 1]);

// For the memory pass (run.sh): with node --expose-gc, SIGUSR2 runs a full collection so that the
// resident size counts live state, not garbage the collector has not reached yet.
if (typeof global.gc === 'function') {
    process.on('SIGUSR2', () => {
        global.gc();
        console.log('gc done');
    });
}

controller.ready(() => {
    const server = http.createServer(app);
    server.keepAliveTimeout = 60000;
    server.listen(port, '127.0.0.1', () => {
        console.log(`listening on 127.0.0.1:${server.address().port}`);
    });
});
