"""A labelled evaluation set for PII detection, deterministic for a seed.

Positives are built with the check functions of :mod:`deid.identifiers` (never with the
recognizers under test), and the name and address vocabularies here are written independently of
the recognizers' lexicons, including surnames and given-name characters the recognizers do not
list. Near-misses are values that must not be detected; each is regenerated until no identifier
check accepts it, because a value some check accepts is a true positive of that entity.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from deid.identifiers import (
    USCC_ALPHABET,
    is_bank_card,
    is_mobile,
    is_resident_id,
    is_uscc,
    luhn_ok,
    normalize_identifier,
    resident_id_check,
    uscc_check,
)

CHECKSUM_ENTITIES = ("CN_RESIDENT_ID", "CN_USCC", "BANK_CARD", "CN_MOBILE")
ENTITIES = (*CHECKSUM_ENTITIES, "CN_NAME", "CN_ADDRESS")

_REGIONS = ("110105", "310104", "440305", "330106", "510107", "420111", "320102", "370202", "610113")
_MOBILE_PREFIXES = ("130", "135", "138", "139", "147", "150", "158", "166", "177", "181", "186", "191", "199")
# (surname, relative weight); the last few are real surnames rare enough to be missing from lexicons.
_SURNAMES = (
    ("王", 72), ("李", 72), ("张", 68), ("刘", 52), ("陈", 45), ("杨", 33), ("黄", 24), ("赵", 20),
    ("吴", 20), ("周", 19), ("徐", 14), ("孙", 14), ("马", 14), ("朱", 13), ("胡", 12), ("郭", 11),
    ("何", 10), ("林", 10), ("高", 10), ("罗", 9), ("郑", 9), ("梁", 9), ("谢", 7), ("宋", 7),
    ("唐", 7), ("韩", 6), ("曹", 6), ("邓", 6), ("彭", 6), ("曾", 5), ("田", 5), ("潘", 5),
    ("魏", 4), ("钟", 3), ("欧阳", 1), ("司马", 1), ("诸葛", 1), ("宁", 1), ("关", 1), ("钮", 1),
    ("蔺", 1), ("郦", 1), ("谈", 1),
)  # fmt: skip
_GIVEN_POOL = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚英华玉兰萍红建文辉宁鹏飞浩宇轩子梓涵欣怡佳琪雨晨思博俊昊天"
    "诗可馨雪婷慧颖琳国志永龙宏清荣晓小云金彬健振立家忠德安福贵兴旭阳鸿毅锋翔瑞泽睿航铭辰逸嘉欢悦蕾薇"
    "璐瑶婧妍彤萱瑾珊露蓉芬琼玲淑珍香美彩爱惠秋艺心若雅紫晴依诺琦曦昕锦程远哲凯坤森洪光武胜庆祥富喜义"
    "炜钰煜瀚骏珺淼昱烨琛暄熠筠岚韬蔚翊珈妤芮湘沁潇骞赟祺彦峻灏楷"
)
_CITIES = (
    ("浙江省", "杭州市", ("西湖区", "拱墅区", "滨江区", "余杭区")),
    ("江苏省", "南京市", ("鼓楼区", "玄武区", "江宁区")),
    ("广东省", "深圳市", ("南山区", "福田区", "宝安区")),
    ("四川省", "成都市", ("武侯区", "锦江区", "青羊区")),
    ("湖北省", "武汉市", ("洪山区", "江汉区", "武昌区")),
    ("山东省", "青岛市", ("市南区", "崂山区", "黄岛区")),
    ("河北省", "石家庄市", ("长安区", "桥西区", "裕华区")),
    ("广西壮族自治区", "南宁市", ("青秀区", "兴宁区")),
    ("北京市", "", ("朝阳区", "海淀区", "东城区")),
    ("上海市", "", ("浦东新区", "徐汇区", "静安区")),
)
_ROADS = (
    "文三路", "中山路", "人民路", "解放路", "建设路", "长江路", "学院路", "科技大道", "滨河大道", "东风街",
    "胜利街", "和平路", "向阳路", "幸福巷", "金融街", "天府大道", "南京东路", "黄河路", "新华路", "光明路",
)  # fmt: skip
_RURAL = (("安吉县", "孝丰镇", "横溪村"), ("德清县", "新市镇", "蔡界村"), ("桐庐县", "分水镇", "后岩村"))
_NAME_TEXTS = (
    "姓名：{}，性别：男", "联系人{}，电话请见附件", "法定代表人：{}", "经办人{}签字确认", "患者{}，女，45岁",
    "收件人：{} 请当面签收", "{}先生您好", "尊敬的{}女士：", "户主{}家庭成员共4人", "申请人{}于近日提交材料",
)  # fmt: skip
_ADDRESS_TEXTS = (
    "家住{}", "住址：{}。", "现居住于{}，", "请将材料寄到{}。", "公司注册地址为{}", "送货地址{}，谢谢",
    "户籍地址：{}", "{}附近发生交通事故",
)  # fmt: skip
_NUMBER_TEXTS = {
    "CN_RESIDENT_ID": (
        "身份证号{}",
        "公民身份号码：{}。",
        "申请人身份证{}已核验",
        "证件号码{}，有效期至2030年",
    ),
    "CN_USCC": ("统一社会信用代码{}", "企业（信用代码：{}）已登记", "社会信用代码为{}的企业"),
    "CN_MOBILE": ("联系电话{}", "手机：{}，", "请拨打{}咨询", "电话{}转人工"),
    "BANK_CARD": ("银行卡号{}", "请将款项汇入{}账户", "卡号：{}。"),
}
_NEAR_MISS_TEXTS = ("编号{}", "单据{}已归档", "备注：{}。")
CLEAN_TEXTS = (
    "今天天气很好，我们去公园散步。", "高新区管委会召开安全生产工作会议。", "请于周一前提交申请材料。",
    "市场监管局开展食品安全专项检查。", "本次会议由王主任主持。", "李老师布置了三道作业题。",
    "城东区和城西区的人口统计已完成。", "2024年全市GDP同比增长5.2%。", "订单已发货，请注意查收。",
    "第3号文件已下发至各部门。", "北京大学的研究团队发布了新成果。", "地铁2号线今日起延长运营时间。",
    "张家界景区游客量创新高。", "请各单位于本月底前报送统计数据。", "新华社记者从有关部门获悉。",
)  # fmt: skip
CLEAN_CELLS = (
    "城东区", "城西区", "南湖区", "北山区", "高新区", "经开区", "滨江区", "郊县", "本科", "硕士", "博士",
    "大专", "高中", "初中", "汉族", "回族", "已婚", "未婚", "离异", "党员", "群众", "制造业", "批发和零售业",
    "工程师", "教师", "杭州某某科技有限公司", "正常", "男", "女", "primary", "college", "M", "F",
)  # fmt: skip


@dataclass(frozen=True)
class Span:
    """A labelled entity: its type and character span."""

    entity: str
    start: int
    end: int


@dataclass(frozen=True)
class Sample:
    """A text and the entities it holds; ``kind`` says how it was made (bare, text, record …)."""

    text: str
    spans: tuple[Span, ...]
    kind: str


def _any_check(value: str) -> bool:
    normalized = normalize_identifier(value)
    return any(check(normalized) for check in (is_resident_id, is_uscc, is_bank_card, is_mobile))


def resident_id(rng: random.Random, born: date | None = None) -> str:
    """A valid resident ID, born between 1930 and 2015 unless ``born`` is given."""
    born = born or date(1930, 1, 1) + timedelta(days=rng.randrange(31_000))
    first17 = f"{rng.choice(_REGIONS)}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return first17 + resident_id_check(first17)


def uscc(rng: random.Random) -> str:
    """A valid unified social credit code that no other check accepts."""
    while True:
        body = "".join(rng.choice(USCC_ALPHABET) for _ in range(8))
        first17 = f"{rng.choice('159Y')}{rng.choice('1239')}{rng.choice(_REGIONS)}{body}{rng.randrange(10)}"
        code = first17 + uscc_check(first17)
        # An all-digit code passing the resident ID check is genuinely ambiguous.
        if not is_resident_id(code):
            return code


def _luhn_complete(partial: str) -> str:
    return next(partial + d for d in "0123456789" if luhn_ok(partial + d))


def bank_card(rng: random.Random) -> str:
    """A Luhn-valid card number of 16 to 19 digits (mostly 16 and 19) that no other check accepts."""
    while True:
        length = rng.choices((16, 17, 18, 19), weights=(45, 5, 10, 40))[0]
        prefix = rng.choice(("62", "4", "5"))
        partial = prefix + "".join(rng.choice("0123456789") for _ in range(length - 1 - len(prefix)))
        card = _luhn_complete(partial)
        # An 18-digit number passing MOD 11-2 or MOD 31 as well is ambiguous by construction; the
        # precedence between entities is tested separately.
        if not (is_resident_id(card) or is_uscc(card)):
            return card


def mobile_digits(rng: random.Random) -> str:
    """A mainland mobile number, 11 bare digits."""
    return rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def mobile(rng: random.Random) -> str:
    """A mainland mobile number, sometimes with +86 or grouped 3-4-4."""
    number = mobile_digits(rng)
    style = rng.random()
    if style < 0.15:
        return f"+86{number}" if style < 0.08 else f"+86 {number}"
    if style < 0.25:
        sep = rng.choice("- ")
        return f"{number[:3]}{sep}{number[3:7]}{sep}{number[7:]}"
    return number


def person_name(rng: random.Random) -> str:
    """A Chinese name: a surname by rough frequency and one or two given-name characters."""
    surname = rng.choices([s for s, _ in _SURNAMES], weights=[w for _, w in _SURNAMES])[0]
    return surname + "".join(rng.choice(_GIVEN_POOL) for _ in range(rng.choice((1, 2, 2))))


def street(rng: random.Random) -> str:
    """A road and house number, as the synthetic city writes after the district."""
    return f"{rng.choice(_ROADS)}{rng.randrange(1, 999)}号"


def address(rng: random.Random) -> str:
    """A street or rural address at one of several levels of detail."""
    province, city, districts = rng.choice(_CITIES)
    unit = rng.choice(("", f"{rng.randrange(1, 30)}栋{rng.randrange(1, 6)}单元{rng.randrange(101, 2999)}室"))
    county, town, village = rng.choice(_RURAL)
    return rng.choice(
        (
            province + city + rng.choice(districts) + street(rng) + unit,
            city + rng.choice(districts) + street(rng) + unit,
            rng.choice(districts) + street(rng) + unit,
            street(rng),
            f"{county}{town}{village}{rng.randrange(1, 12)}组{rng.randrange(1, 99)}号",
        )
    )


_MAKERS: dict[str, Callable[[random.Random], str]] = {
    "CN_RESIDENT_ID": resident_id,
    "CN_USCC": uscc,
    "BANK_CARD": bank_card,
    "CN_MOBILE": mobile,
    "CN_NAME": person_name,
    "CN_ADDRESS": address,
}
_TEXTS = {**_NUMBER_TEXTS, "CN_NAME": _NAME_TEXTS, "CN_ADDRESS": _ADDRESS_TEXTS}


def _embed(template: str, value: str, entity: str, kind: str) -> Sample:
    start = template.index("{}")
    return Sample(template.format(value), (Span(entity, start, start + len(value)),), kind)


def _record(rng: random.Random) -> Sample:
    """A form-like line holding a name, a resident ID, a mobile and an address, fields touching."""
    text, spans = "", []
    for label, entity in (("姓名：", "CN_NAME"), ("身份证号", "CN_RESIDENT_ID"), ("手机", "CN_MOBILE")):
        value = _MAKERS[entity](rng)
        text += label
        spans.append(Span(entity, len(text), len(text) + len(value)))
        text += value + ("，" if entity == "CN_NAME" else "")
    value = address(rng)
    text += "，住址："
    spans.append(Span("CN_ADDRESS", len(text), len(text) + len(value)))
    return Sample(text + value + "。", tuple(spans), "record")


def positives(seed: int, per_entity: int) -> list[Sample]:
    """Per entity, ``per_entity`` bare cells and as many in free text, plus form-like records.

    One name text in ten has no context word, as names in running prose often do not.
    """
    rng = random.Random(seed)
    samples = []
    for entity, make in _MAKERS.items():
        for _ in range(per_entity):
            value = make(rng)
            samples.append(Sample(value, (Span(entity, 0, len(value)),), "bare"))
            template = rng.choice(_TEXTS[entity])
            if entity == "CN_NAME" and rng.random() < 0.1:
                template = "{}昨天到社区办理了业务。"
            samples.append(_embed(template, make(rng), entity, "text"))
    samples.extend(_record(rng) for _ in range(per_entity // 2))
    return samples


def clean() -> list[Sample]:
    """Texts and cells holding no PII at all."""
    return [Sample(text, (), "clean") for text in (*CLEAN_TEXTS, *CLEAN_CELLS)]


def _replace_last(value: str, alphabet: str, rng: random.Random) -> str:
    return value[:-1] + rng.choice([c for c in alphabet if c != value[-1].upper()])


def _impossible_date(rng: random.Random) -> str:
    year = rng.choice((1985, 1990, 2001, 2099))
    month, day = rng.choice(((13, 1), (0, 10), (2, 30), (4, 31), (2, 29 if year % 4 else 30), (1, 32)))
    first17 = f"{rng.choice(_REGIONS)}{year}{month:02d}{day:02d}{rng.randrange(1000):03d}"
    return first17 + resident_id_check(first17)


def _amount(rng: random.Random) -> str:
    """An amount, its integer part sometimes shaped like a mobile or a Luhn-valid card number."""
    integer = rng.choice(
        (f"{rng.randrange(1, 10**7):,}", mobile_digits(rng), _luhn_complete(_digits(rng, 15)))
    )
    return f"{rng.choice(('¥', ''))}{integer}.{rng.randrange(100):02d}{rng.choice(('元', ''))}"


def _forbidden_letter(rng: random.Random) -> str:
    code = uscc(rng)
    at = rng.randrange(8, 17)
    return code[:at] + rng.choice("IOZSV") + code[at + 1 :]


def _digits(rng: random.Random, count: int) -> str:
    return str(rng.randrange(10 ** (count - 1), 10**count))


NEAR_MISS_MAKERS: dict[str, Callable[[random.Random], str]] = {
    "id_wrong_check": lambda rng: _replace_last(resident_id(rng), "0123456789X", rng),
    "id_impossible_date": _impossible_date,
    "digits_17": lambda rng: resident_id(rng)[:16] + rng.choice("0123456789"),
    "digits_19": lambda rng: resident_id(rng)[:17] + _digits(rng, 2),
    "mobile_bad_prefix": lambda rng: rng.choice(("10", "11", "12")) + _digits(rng, 9),
    "digits_10": lambda rng: _digits(rng, 10),
    "uscc_wrong_check": lambda rng: _replace_last(uscc(rng), USCC_ALPHABET, rng),
    "uscc_forbidden_letter": _forbidden_letter,
    "card_fails_luhn": lambda rng: _replace_last(bank_card(rng), "0123456789", rng),
    "order_number": lambda rng: rng.choice(("", "DD", "NO.")) + f"2024{_digits(rng, 4)}{_digits(rng, 12)}",
    "date": lambda rng: rng.choice(("2024-03-15", "2024年3月15日", "20240315", "1990/07/01 12:30")),
    "amount": _amount,
}


def near_misses(seed: int, per_class: int) -> dict[str, list[Sample]]:
    """Per near-miss class, ``per_class`` values, each bare and inside a sentence."""
    rng = random.Random(seed)
    classes: dict[str, list[Sample]] = {}
    for name, make in NEAR_MISS_MAKERS.items():
        samples: list[Sample] = []
        while len(samples) < 2 * per_class:
            value = make(rng)
            if _any_check(value):
                continue
            samples.append(Sample(value, (), name))
            samples.append(Sample(rng.choice(_NEAR_MISS_TEXTS).format(value), (), name))
        classes[name] = samples
    return classes
