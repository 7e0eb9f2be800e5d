"""Turning a record into token ids: the prompt (a format string, or the tokenizer's own chat
template), the response and how it ends, the loss mask. Training, evaluation, importance and the
landscapes all go through one :class:`Prompter`, so they see the same tokens."""

from __future__ import annotations

from functools import cached_property

from cofi.config.settings import PromptSettings

IGNORE_INDEX = -100  # label value the loss skips (prompt tokens when masking, padding)


def check_template(template: str) -> None:
    """A format string using only ``{instruction}`` and ``{input}``."""
    from cofi.errors import InputError

    try:
        template.format(instruction="", input="")
    except (KeyError, IndexError, ValueError) as error:
        raise InputError(f"must be a format string using only {{instruction}} and {{input}} ({error!r})") from None


def one_exchange(record: dict) -> bool:
    """A record a single-turn prompt holds whole: an instruction record, or a conversation of one user turn and one
    assistant turn (no system turn)."""
    return not record.get("messages") or [turn["role"] for turn in record["messages"]] == ["user", "assistant"]


def user_turn(record: dict) -> str:
    """The user's message of a chat prompt: the instruction, then the input after a blank line."""
    return record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")


class Prompter:
    """How records become tokens for one tokenizer and the prompt settings.

    String template (``chat_template`` off, the embedded default): BOS + the formatted template; the
    response ends with EOS. Chat template (``chat_template: true``): the tokenizer's own
    ``apply_chat_template`` on one user turn, or a conversation record's turns, with the generation prompt (the
    template adds BOS if the model wants it); the response ends with the template's end-of-turn token, and
    generation stops there. A conversation's training example has the loss on every assistant turn.
    """

    def __init__(self, tokenizer, template: str = PromptSettings.template, chat: bool = False,
                 system: str | None = None):
        self.tokenizer, self.template, self.chat, self.system = tokenizer, template, chat, system
        if chat and not getattr(tokenizer, "chat_template", None):
            from cofi.errors import InputError

            raise InputError("prompt.chat_template: true, but the model's tokenizer has no chat template "
                             "(tokenizer_config.json or chat_template.jinja)")

    @classmethod
    def of(cls, tokenizer, settings) -> "Prompter":
        """From :class:`cofi.config.settings.PromptSettings`."""
        return cls(tokenizer, settings.template, settings.chat_template, settings.system)

    def _turns(self, *turns: dict) -> list[dict]:
        """The conversation: the configured system turn (none: the template's default), then ``turns``."""
        return ([{"role": "system", "content": self.system}] if self.system is not None else []) + list(turns)

    def conversation(self, record: dict) -> list[dict]:
        """The chat turns of ``record`` through its last assistant turn (none for a single instruction): its own
        ``messages``, the configured system turn in place of its own where one is configured."""
        if not record.get("messages"):
            return self._turns({"role": "user", "content": user_turn(record)})
        turns = [{"role": turn["role"], "content": turn["content"]} for turn in record["messages"]]
        if self.system is None:
            return turns
        return self._turns(*(turn for turn in turns if turn["role"] != "system"))

    def text(self, record: dict) -> str:
        """The prompt as text, up to where the response begins."""
        if self.chat:
            turns = self.conversation(record)
            if record.get("messages"):
                turns = turns[:-1]  # the last assistant turn is the response
            return self.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        if not one_exchange(record):
            from cofi.errors import InputError

            raise InputError("a conversation with a system turn or more than one exchange needs "
                             "prompt.chat_template: true (prompt.template has one instruction and one response)")
        return self.template.format(instruction=record["instruction"], input=record.get("input", ""))

    def _bos(self) -> list[int]:
        bos = self.tokenizer.bos_token_id
        return [] if self.chat or bos is None else [bos]

    def prompt_ids(self, record: dict) -> list[int]:
        """Prompt tokens; no end token: generation continues from here."""
        return self._bos() + self.tokenizer.encode(self.text(record), add_special_tokens=False)

    def prompt_lengths(self, records: list[dict]) -> list[int]:
        """Token counts of :meth:`prompt_ids` for many records at once (one batched tokenizer call)."""
        texts = [self.text(record) for record in records]
        return [len(self._bos()) + len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    @property
    def _eos(self) -> list[int]:
        return [] if self.tokenizer.eos_token_id is None else [self.tokenizer.eos_token_id]

    @cached_property
    def end_ids(self) -> list[int]:
        """What closes a response: EOS, or the chat template's end-of-turn token (the first special token
        the template writes after an assistant message)."""
        eos = self._eos
        if not self.chat:
            return eos
        marker = "cofi-response-end-marker"
        rendered = self.tokenizer.apply_chat_template(
            self._turns({"role": "user", "content": "x"}, {"role": "assistant", "content": marker}), tokenize=False)
        tail = rendered[rendered.rindex(marker) + len(marker):]
        special = set(self.tokenizer.all_special_ids) | {
            i for i, token in self.tokenizer.added_tokens_decoder.items() if token.special}
        return next(([i] for i in self.tokenizer.encode(tail, add_special_tokens=False) if i in special), eos)

    @property
    def stop_ids(self) -> list[int]:
        """Token ids that end generation: the response's end, and EOS."""
        return list(dict.fromkeys(self.end_ids + self._eos))

    def response_ids(self, response: str, end: bool = True) -> list[int]:
        return self.tokenizer.encode(response, add_special_tokens=False) + (self.end_ids if end else [])

    def example(self, record: dict, mask_prompt: bool, max_len: int) -> dict:
        """Token ids and labels for supervised fine-tuning; prompt labels are ignored if ``mask_prompt``.

        Examples longer than ``max_len`` are cut from the right (the response end may be lost, as in
        most SFT code); :func:`cofi.training.loop.tokenize_dataset` counts how many were cut.
        """
        if self.chat and record.get("messages"):
            return self._conversation_example(self.conversation(record), mask_prompt, max_len)
        prompt = self.prompt_ids(record)
        response = self.response_ids(record["output"])
        input_ids = (prompt + response)[:max_len]
        labels = ([IGNORE_INDEX] * len(prompt) if mask_prompt else list(prompt)) + response
        return {"input_ids": input_ids, "labels": labels[:max_len]}

    def _conversation_example(self, turns: list[dict], mask_prompt: bool, max_len: int) -> dict:
        """A conversation's example, the loss on every assistant turn: each assistant turn's tokens are what the
        template adds between the conversation up to it with the generation prompt and the conversation through it,
        up to and with the end-of-turn token (what follows the token, a newline say, is context, not loss)."""
        def render(upto: int, opening: bool) -> str:
            return self.tokenizer.apply_chat_template(turns[:upto], tokenize=False, add_generation_prompt=opening)

        def encode(text: str) -> list[int]:
            return self.tokenizer.encode(text, add_special_tokens=False)

        end = self.end_ids[0] if self.end_ids else None
        input_ids, labels, rendered, context = [], [], "", []
        for index, turn in enumerate(turns):
            if turn["role"] != "assistant":
                continue
            opening, through = render(index, True), render(index + 1, False)
            if not (opening.startswith(rendered) and through.startswith(opening)):
                from cofi.errors import InputError

                raise InputError(
                    f"the model's chat template renders a conversation's earlier turns differently once turn {index} "
                    "follows (it rewrites history, e.g. drops earlier reasoning); cofi builds a conversation's example "
                    "turn by turn, so it cannot place the loss on this template's assistant turns; give single "
                    "exchanges (instruction, input, output) instead")
            context += encode(opening[len(rendered):])
            reply = encode(through[len(opening):])
            closed = reply.index(end) + 1 if end in reply else len(reply)
            input_ids += context + reply[:closed]
            labels += ([IGNORE_INDEX] * len(context) if mask_prompt else context) + reply[:closed]
            context, rendered = reply[closed:], through
        return {"input_ids": input_ids[:max_len], "labels": labels[:max_len]}
