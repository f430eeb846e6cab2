"""PII detection in Chinese text, fully offline: Presidio recognizers over the check characters.

Six entities: ``CN_RESIDENT_ID``, ``CN_USCC``, ``BANK_CARD`` and ``CN_MOBILE`` are found by pattern
and confirmed by :mod:`deid.identifiers`; ``CN_NAME`` (listed surname plus one or two given-name
characters, after a context word such as 姓名 or before an honorific, or as a whole cell) and
``CN_ADDRESS`` (a run of administrative, road and number components) by lexicon. The analyzer runs
on :class:`NoOpNlpEngine`, so no language model is loaded or downloaded.

>>> [(f.entity, f.text) for f in detect("联系人：王小明，手机13812345678，身份证11010519491231002X")]
[('CN_NAME', '王小明'), ('CN_MOBILE', '13812345678'), ('CN_RESIDENT_ID', '11010519491231002X')]
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from presidio_analyzer import (
    AnalyzerEngine,
    LocalRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NlpArtifacts, NoOpNlpEngine

from deid.identifiers import (
    BANK_CARD_RE,
    MOBILE_RE,
    RESIDENT_ID_RE,
    USCC_RE,
    is_bank_card,
    is_mobile,
    is_resident_id,
    is_uscc,
    normalize_identifier,
)

LANGUAGE = "zh"
MIN_SCORE = 0.5
# Overlapping findings keep the earlier entity: check characters beat lexicons, and the stricter
# check wins (a resident ID's date and MOD 11-2 over MOD 31, MOD 31 over Luhn).
PRIORITY = ("CN_RESIDENT_ID", "CN_USCC", "BANK_CARD", "CN_MOBILE", "CN_ADDRESS", "CN_NAME")
IDENTIFIER_ENTITIES = frozenset(PRIORITY[:4])

# Inline ASCII, which both re and Presidio's regex module read alike (their ASCII flag constants
# differ), keeps \d from matching full-width digits that the checks would mis-read.
_ASCII = "(?a)"
# Chinese has no word boundaries, so numbers are delimited by what may not touch them; a decimal
# point followed by digits means an amount, not an identifier.
_LEFT = r"(?<![0-9A-Za-z])(?<![0-9]\.)"
_RIGHT = r"(?![0-9A-Za-z])(?!\.[0-9])"
_SHAPES = {
    "CN_RESIDENT_ID": (RESIDENT_ID_RE.pattern,),
    "CN_USCC": (USCC_RE.pattern,),
    "BANK_CARD": (BANK_CARD_RE.pattern, r"[1-9][0-9]{3}(?:[ -][0-9]{4}){3}(?:[ -]?[0-9]{1,3})?"),
    "CN_MOBILE": (MOBILE_RE.pattern, r"(?:\+?86[- ]?)?1[3-9][0-9][- ][0-9]{4}[- ][0-9]{4}"),
}
_WHOLE_SHAPES = {
    entity: re.compile(_ASCII + "|".join(f"(?:{shape})" for shape in shapes), re.IGNORECASE)
    for entity, shapes in _SHAPES.items()
}

_HAN = "\u4e00-\u9fff"
# Approximate share of the population per mille (household registration statistics), by rank.
_SURNAME_SHARES = (
    "王72 李72 张68 刘52 陈45 杨33 黄24 赵20 吴20 周19 徐14 孙14 马14 朱13 胡12 郭11 何10 林10 高10 罗9 "
    "郑9 梁9 谢7 宋7 唐7 许6 韩6 冯6 邓6 曹6 彭6 曾5 肖5 田5 董5 袁5 潘5 于5 蒋5 蔡5 余5 杜4 叶4 程4 "
    "苏4 魏4 吕4 丁4 任4 沈4 姚4 卢4 姜4 崔4 钟3 谭3 陆3 汪3 范3 金3 石3 廖3 贾3 夏3 韦3 付3 方3 白3 "
    "邹3 孟3 熊3 秦3 邱3 江3 尹3 薛2 闫2 段2 雷2 侯2 龙2 史2 陶2 黎2 贺2 顾2 毛2 郝2 龚2 邵2 万2 钱2 "
    "严2 覃2 武2 戴2 莫2 孔2 向2 汤2"
)
_RARE_SURNAMES = (
    "常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕"
    "单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦"
    "麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖"
    "巩明佘池查麻苑迟邝"
)
_COMPOUND_SURNAMES = (
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 令狐 端木 独孤 南宫 呼延 轩辕"
)
# Characters common in given names; a given name of these scores higher than one without.
_GIVEN = frozenset(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉力宁鹏飞浩宇轩然子梓涵欣怡佳琪雨晨思"
    "博俊昊天一诗可馨雪婷慧颖琳倩洁燕晶丹莉琴凤梅菊春海波峰斌鑫林亮成东新国志永龙宏清荣晓小云金彬健振立"
    "家忠德安福生贵兴旭阳晖鸿毅锋翔瑞泽睿航宸铭辰逸嘉欢悦蕾薇璐瑶婧妍彤萱瑾珊露蓉芬琼玲淑珍香美月彩爱惠"
    "秋艺心若雅紫晴语沫依诺琦曦昕锦程远哲凯政坤伦杨森洪光武胜庆祥富喜义仁顺昌盛达宝民乐学卫正江山川松"
    "柏岩冰星霖楠柳菲蓓佩婉瑜珂璇茜莎娅蕊桐朗帆舟豪威腾君亚莹怀恩奇凡佑芝蓝茹素芸荷娇媛婕姿"
)
# Characters that end a name rather than continue it: form labels, function words, numbers, places.
_NOT_GIVEN = frozenset(
    "的了是在和与及或等为于从到向把被给让说称表示讲问答告诉我你他她它们这那有无不也都已将会能要请先女士同"
    "老师经理性别年龄电话手机地址住身份证号码出族职单位联系籍贯男省市区县镇乡村路街巷楼室栋二三四五六七"
    "八九十零日"
)
_NAME_CONTEXT = (
    "姓名", "联系人", "法定代表人", "法人代表", "法人", "负责人", "申请人", "户主", "经办人",
    "收件人", "收货人", "投诉人", "举报人", "当事人", "患者", "被保险人", "持卡人", "开户人",
    "户名", "监护人", "委托人", "代理人", "借款人", "担保人",
)  # fmt: skip
_HONORIFICS = (
    "先生", "女士", "小姐", "同志", "老师", "医生", "师傅", "经理", "主任", "教授", "律师",
)  # fmt: skip

# Address components: a place name (any Han character but the verbs and pronouns that lead into
# an address) ending in a place suffix, a bare province name, or a number with a unit.
_NOT_PLACE = "在住于是的了与及或到从往我你他她们请送寄址为位来自去搬"
_PLACE_SUFFIXES = (
    "特别行政区", "自治区", "自治州", "地区", "省", "市", "盟", "区", "县", "旗", "街道", "镇",
    "乡", "社区", "小区", "新村", "村", "花园", "家园", "苑", "大道", "大街", "胡同", "路", "街",
    "巷", "弄", "里", "大厦", "广场", "中心", "大楼", "公寓",
)  # fmt: skip
_UNITS = (
    "号院", "号楼", "号", "弄", "栋", "幢", "座", "单元", "层", "楼", "室", "户", "组",
)  # fmt: skip
_PROVINCES = (
    "北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江",
    "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州", "云南",
    "陕西", "甘肃", "青海", "台湾", "内蒙古", "广西", "西藏", "宁夏", "新疆", "香港", "澳门",
)  # fmt: skip
_PLACE_CHAR = rf"(?:(?![{_NOT_PLACE}])[{_HAN}])"
_NUMBER = r"(?:[0-9]{1,5}(?:-[0-9]{1,5}){0,3}|[A-Za-z][0-9]{0,4}|[一二三四五六七八九十百零]{1,4})"
_ADDRESS_PART_RE = re.compile(
    rf"(?P<number>{_NUMBER}(?:{'|'.join(_UNITS)}))"
    rf"|(?P<place>{_PLACE_CHAR}{{1,8}}?(?:{'|'.join(_PLACE_SUFFIXES)}))"
    rf"|(?P<region>{'|'.join(_PROVINCES)})"
    rf"|(?P<tail>{'|'.join(_PLACE_SUFFIXES)})"
)
_MARKERS = "".join(sorted({suffix[-1] for suffix in (*_PLACE_SUFFIXES, *_UNITS)}))

# RE2 syntax, for vectorized prefilters: every text in which detect() can find something matches
# TEXT_PREFILTER, and every value identify_value() recognizes matches VALUE_PREFILTER.
TEXT_PREFILTER = "|".join(
    (
        r"[0-9A-Za-z]{11}",
        r"[0-9][ -][0-9]{4}[ -][0-9]{4}",
        *_NAME_CONTEXT,
        *_HONORIFICS,
        rf"[{_MARKERS}].*[{_MARKERS}]",
    )
)
VALUE_PREFILTER = r"^\s*(?:\+?[0-9A-Za-z][0-9A-Za-z -]{9,23}[0-9A-Za-z]|\p{Han}{2,4})\s*$"


def _surname_weights() -> dict[str, float]:
    weights = dict.fromkeys(_RARE_SURNAMES, 0.1)
    for entry in _SURNAME_SHARES.split():
        share = int(entry[1:])
        weights[entry[0]] = 0.3 if share >= 10 else 0.25 if share >= 4 else 0.2
    weights.update(dict.fromkeys(_COMPOUND_SURNAMES.split(), 0.25))
    return weights


_SURNAME_WEIGHT = _surname_weights()


@dataclass(frozen=True)
class Finding:
    """One detected entity: its type, character span in the analyzed text, score and text."""

    entity: str
    start: int
    end: int
    score: float
    text: str


def number_entity(token: str) -> str | None:
    """Which identifier ``token`` is by its check characters, in ``PRIORITY`` order, or None."""
    value = normalize_identifier(token)
    if is_resident_id(value):
        return "CN_RESIDENT_ID"
    if RESIDENT_ID_RE.fullmatch(value):
        # Laid out like a resident ID (region, birth date) but failing its check: a mistyped ID,
        # which must not be reported as a USCC or an 18-digit card just because MOD 31 or Luhn agree.
        return None
    if is_uscc(value):
        return "CN_USCC"
    if is_bank_card(value):
        return "BANK_CARD"
    return "CN_MOBILE" if is_mobile(value) else None


def _is_han(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff"


def _surname_length(chars: str) -> int:
    for size in (2, 1):
        if len(chars) >= size and chars[:size] in _SURNAME_WEIGHT:
            return size
    return 0


def _name_score(chars: str) -> float:
    """Confidence that ``chars`` alone is a name: listed surname, 1-2 given characters; 0 if not."""
    size = _surname_length(chars)
    given = chars[size:]
    if not size or not 1 <= len(given) <= 2 or any(c in _NOT_GIVEN or not _is_han(c) for c in given):
        return 0.0
    common = sum(c in _GIVEN for c in given)
    given_weight = 0.3 if common == len(given) else 0.15 if common else 0.1
    return 0.2 + _SURNAME_WEIGHT[chars[:size]] + given_weight


def identify_value(value: str) -> str | None:
    """The entity a whole cell value is (an identifier by its checks, or a bare name), or None."""
    stripped = value.strip()
    for entity, shape in _WHOLE_SHAPES.items():
        if shape.fullmatch(stripped) and number_entity(stripped) == entity:
            return entity
    return "CN_NAME" if _name_score(stripped) >= MIN_SCORE else None


class _IdentifierRecognizer(PatternRecognizer):
    """An identifier found by pattern and kept only if its checks say it is this entity."""

    def __init__(self, entity: str) -> None:
        patterns = [
            Pattern(f"{entity.lower()}_{i}", f"{_ASCII}{_LEFT}(?:{shape}){_RIGHT}", MIN_SCORE)
            for i, shape in enumerate(_SHAPES[entity])
        ]
        super().__init__(
            supported_entity=entity,
            supported_language=LANGUAGE,
            patterns=patterns,
            global_regex_flags=re.IGNORECASE,
        )

    def validate_result(self, pattern_text: str) -> bool:
        """Whether the matched text passes this entity's checks and no stronger entity's."""
        return number_entity(pattern_text) == self.supported_entities[0]


class _LexiconRecognizer(LocalRecognizer):
    """A recognizer whose lexicons are module constants, so loading does nothing."""

    def __init__(self, entity: str) -> None:
        super().__init__(supported_entities=[entity], supported_language=LANGUAGE)

    def load(self) -> None:
        """Nothing to load: the lexicons are compiled at import."""

    def _result(self, start: int, end: int, score: float) -> RecognizerResult:
        return RecognizerResult(
            self.supported_entities[0],
            start,
            end,
            score,
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: type(self).__name__,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
            },
        )


_CONTEXT_RE = re.compile(rf"(?:{'|'.join(_NAME_CONTEXT)})[:：\s]*(?:是|为|叫)?[:：\s]*(?=[{_HAN}])")
_HONORIFIC_RE = re.compile("|".join(_HONORIFICS))


def _name_end(text: str, start: int) -> int:
    """End of the name beginning at ``start`` (just after a context word), or ``start`` if none."""
    size = _surname_length(text[start : start + 2])
    given = start + size
    count = 0
    while size and count < 2 and given + count < len(text):
        char = text[given + count]
        if not _is_han(char) or char in _NOT_GIVEN:
            break
        count += 1
    if count == 2:
        after = text[given + 2 : given + 3]
        # A second given character is kept if it is a common one or the name clearly ends there.
        if text[given + 1] not in _GIVEN and after and _is_han(after) and after not in _NOT_GIVEN:
            count = 1
    return given + count if count else start


class _NameRecognizer(_LexiconRecognizer):
    """``CN_NAME``: after a context word, before an honorific, or as the whole text."""

    def __init__(self) -> None:
        super().__init__("CN_NAME")

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Names in ``text``; a whole text that is a name is scored by surname and given characters."""
        stripped = text.strip()
        score = _name_score(stripped)
        if score:
            start = text.index(stripped)
            return [self._result(start, start + len(stripped), score)]
        results = []
        for match in _CONTEXT_RE.finditer(text):
            end = _name_end(text, match.end())
            if end > match.end():
                results.append(self._result(match.end(), end, 0.85))
        for match in _HONORIFIC_RE.finditer(text):
            before = [
                (_name_score(text[s : match.start()]), s)
                for s in range(max(0, match.start() - 4), match.start())
            ]
            best, start = max(before, key=lambda pair: (pair[0], -pair[1]), default=(0.0, 0))
            if best >= MIN_SCORE:
                results.append(self._result(start, match.start(), max(best, 0.7)))
        return results


def _address_runs(text: str) -> Iterator[tuple[int, int, float]]:
    """(start, end, score) of each run of adjacent address components that makes an address."""
    run: list[re.Match[str]] = []
    for match in (*_ADDRESS_PART_RE.finditer(text), None):
        if match is not None and run and match.start() == run[-1].end():
            run.append(match)
            continue
        kinds = [part.lastgroup for part in run]
        marked = kinds.count("place") + kinds.count("number")
        if marked >= 2 and ("number" in kinds or marked + kinds.count("region") >= 3):
            yield run[0].start(), run[-1].end(), 0.85 if len(kinds) - kinds.count("tail") >= 3 else 0.7
        # A bare suffix only continues a run; it cannot start one.
        run = [match] if match is not None and match.lastgroup != "tail" else []


class _AddressRecognizer(_LexiconRecognizer):
    """``CN_ADDRESS``: at least two adjacent components with a number, or three places."""

    def __init__(self) -> None:
        super().__init__("CN_ADDRESS")

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Addresses in ``text``."""
        return [self._result(start, end, score) for start, end, score in _address_runs(text)]


@cache
def build_analyzer() -> AnalyzerEngine:
    """The shared analyzer: the six Chinese recognizers on a no-op NLP engine (nothing downloaded)."""
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    for entity in _SHAPES:
        registry.add_recognizer(_IdentifierRecognizer(entity))
    registry.add_recognizer(_NameRecognizer())
    registry.add_recognizer(_AddressRecognizer())
    engine = NoOpNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": "none"}])
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=[LANGUAGE])


def _resolve(text: str, results: list[RecognizerResult]) -> list[Finding]:
    """Non-overlapping findings in text order, overlaps going to the earlier entity in ``PRIORITY``."""
    ranked = sorted(results, key=lambda r: (PRIORITY.index(r.entity_type), -r.score, r.start - r.end))
    kept: list[RecognizerResult] = []
    for result in ranked:
        if all(result.end <= other.start or other.end <= result.start for other in kept):
            kept.append(result)
    return [
        Finding(r.entity_type, r.start, r.end, r.score, text[r.start : r.end])
        for r in sorted(kept, key=lambda r: r.start)
    ]


def detect(text: str) -> list[Finding]:
    """Every PII entity in ``text`` scoring at least ``MIN_SCORE``, overlaps resolved."""
    return _resolve(text, build_analyzer().analyze(text=text, language=LANGUAGE, score_threshold=MIN_SCORE))
