"""The vocabularies the name and address recognizers read: surnames, given-name characters, the
words around a name, and the parts of a Chinese address.

Data only; :mod:`deid.recognizers` holds the rules that use it.
"""

from __future__ import annotations

HAN = "\u4e00-\u9fff"
"""The CJK Unified Ideographs block, as a regex range: every character listed here is in it."""

# Approximate share of the population per mille (household registration statistics), by rank.
SURNAME_SHARES = (
    "王72 李72 张68 刘52 陈45 杨33 黄24 赵20 吴20 周19 徐14 孙14 马14 朱13 胡12 郭11 何10 林10 高10 罗9 "
    "郑9 梁9 谢7 宋7 唐7 许6 韩6 冯6 邓6 曹6 彭6 曾5 肖5 田5 董5 袁5 潘5 于5 蒋5 蔡5 余5 杜4 叶4 程4 "
    "苏4 魏4 吕4 丁4 任4 沈4 姚4 卢4 姜4 崔4 钟3 谭3 陆3 汪3 范3 金3 石3 廖3 贾3 夏3 韦3 付3 方3 白3 "
    "邹3 孟3 熊3 秦3 邱3 江3 尹3 薛2 闫2 段2 雷2 侯2 龙2 史2 陶2 黎2 贺2 顾2 毛2 郝2 龚2 邵2 万2 钱2 "
    "严2 覃2 武2 戴2 莫2 孔2 向2 汤2"
)
RARE_SURNAMES = (
    "常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕"
    "单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦"
    "麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖"
    "巩明佘池查麻苑迟邝"
)
COMPOUND_SURNAMES = (
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 令狐 端木 独孤 南宫 呼延 轩辕"
)
# Characters common in given names; a given name of these scores higher than one without.
GIVEN = frozenset(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉力宁鹏飞浩宇轩然子梓涵欣怡佳琪雨晨思"
    "博俊昊天一诗可馨雪婷慧颖琳倩洁燕晶丹莉琴凤梅菊春海波峰斌鑫林亮成东新国志永龙宏清荣晓小云金彬健振立"
    "家忠德安福生贵兴旭阳晖鸿毅锋翔瑞泽睿航宸铭辰逸嘉欢悦蕾薇璐瑶婧妍彤萱瑾珊露蓉芬琼玲淑珍香美月彩爱惠"
    "秋艺心若雅紫晴语沫依诺琦曦昕锦程远哲凯政坤伦杨森洪光武胜庆祥富喜义仁顺昌盛达宝民乐学卫正江山川松"
    "柏岩冰星霖楠柳菲蓓佩婉瑜珂璇茜莎娅蕊桐朗帆舟豪威腾君亚莹怀恩奇凡佑芝蓝茹素芸荷娇媛婕姿"
)
# Characters that end a name rather than continue it: form labels, function words, numbers, places.
NOT_GIVEN = frozenset(
    "的了是在和与及或等为于从到向把被给让说称表示讲问答告诉我你他她它们这那有无不也都已将会能要请先女士同"
    "老师经理性别年龄电话手机地址住身份证号码出族职单位联系籍贯男省市区县镇乡村路街巷楼室栋二三四五六七"
    "八九十零日"
)
NAME_CONTEXT = (
    "姓名", "联系人", "法定代表人", "法人代表", "法人", "负责人", "申请人", "户主", "经办人",
    "收件人", "收货人", "投诉人", "举报人", "当事人", "患者", "被保险人", "持卡人", "开户人",
    "户名", "监护人", "委托人", "代理人", "借款人", "担保人",
)  # fmt: skip
HONORIFICS = (
    "先生", "女士", "小姐", "同志", "老师", "医生", "师傅", "经理", "主任", "教授", "律师",
)  # fmt: skip

# Address components: a place name (any Han character but the verbs and pronouns that lead into
# an address) ending in a place suffix, a bare province name, or a number with a unit.
NOT_PLACE = "在住于是的了与及或到从往我你他她们请送寄址为位来自去搬"
PLACE_SUFFIXES = (
    "特别行政区", "自治区", "自治州", "地区", "省", "市", "盟", "区", "县", "旗", "街道", "镇",
    "乡", "社区", "小区", "新村", "村", "花园", "家园", "苑", "大道", "大街", "胡同", "路", "街",
    "巷", "弄", "里", "大厦", "广场", "中心", "大楼", "公寓",
)  # fmt: skip
UNITS = (
    "号院", "号楼", "号", "弄", "栋", "幢", "座", "单元", "层", "楼", "室", "户", "组",
)  # fmt: skip
PROVINCES = (
    "北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江",
    "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州", "云南",
    "陕西", "甘肃", "青海", "台湾", "内蒙古", "广西", "西藏", "宁夏", "新疆", "香港", "澳门",
)  # fmt: skip
