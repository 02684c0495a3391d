"""Reproducible generator of the brand-service intent training set.

No public corpus has customer-service intents, so the set is built from (1) templates and
vocabularies written for the three demo brands — the airline 云程航空, the phone brand 启明手机
and the coffee/retail brand 鹿鸣咖啡 — plus generic consumer-brand wording, rendered with fan-style
noise (@mentions, emoticon codes such as ``[怒]``, typos, pinyin/English mix, numbers);
(2) hand-written examples in ``data/intent_handwritten.jsonl``; (3) weak labels from public
sets (see ``datasets.weak_intent_rows``). The dev set ``data/intent_dev.jsonl`` is hand-written
separately, in different wording, and never generated. ``python -m scrm.nlp.intent_data`` prints
a sample.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

INTENTS = ("complaint", "inquiry", "lost_item", "after_sales", "praise", "purchase_intent", "spam", "other")
DATA_DIR = Path(__file__).resolve().parent / "data"

BRANDS = {
    "air": ["云程航空", "云程航空客服", "云程航空官方微博", "云程", "YC航空", "云程航空会员中心"],
    "phone": ["启明手机", "启明手机客服", "启明科技", "启明官方旗舰店", "启明手机售后", "启明"],
    "coffee": ["鹿鸣咖啡", "鹿鸣咖啡客服", "鹿鸣", "鹿鸣咖啡官方", "鹿鸣便利店", "鹿鸣咖啡会员"],
    "generic": ["官方客服", "小编", "客服小姐姐", "品牌官方", "某某旗舰店"],
}
OTHER_BRANDS = [
    "东方航空",
    "南方航空",
    "国航",
    "华为",
    "小米",
    "苹果",
    "瑞幸",
    "星巴克",
    "美团",
    "京东",
    "淘宝",
    "OPPO",
]

V: dict[str, list[str]] = {
    "flight": [
        "MU5137",
        "CZ3101",
        "YC8848",
        "YC1203",
        "yc6602",
        "YC 2271",
        "HU7181",
        "CA1501",
        "3U8633",
        "YC908",
    ],
    "city": [
        "上海",
        "成都",
        "北京",
        "广州",
        "深圳",
        "杭州",
        "西安",
        "重庆",
        "昆明",
        "三亚",
        "武汉",
        "厦门",
        "大连",
        "哈尔滨",
        "乌鲁木齐",
        "拉萨",
        "青岛",
        "南京",
        "长沙",
        "贵阳",
    ],
    "airport": [
        "浦东机场",
        "虹桥",
        "首都机场",
        "大兴机场",
        "白云机场",
        "双流机场",
        "天府机场",
        "萧山机场",
        "T2",
        "T3航站楼",
    ],
    "seat": ["32C", "12A", "5F", "47K", "18D", "3B", "27J", "40A", "21 C"],
    "date": [
        "昨天",
        "今天",
        "明天",
        "前天",
        "上周五",
        "周日",
        "3月5号",
        "5.1",
        "国庆",
        "下周二",
        "12月24日",
        "刚刚",
        "今早",
        "昨晚",
        "大年初二",
    ],
    "time": ["早上7点", "下午3点半", "晚上十点", "14:30", "8点多", "凌晨1点", "中午", "9:05", "下午两点"],
    "order": [
        "20240506123456789",
        "E2310883217",
        "YC88123456",
        "7812345678901",
        "订单尾号4521",
        "DD20231111009",
    ],
    "phone": ["13812345678", "139 1234 5678", "186-2233-4455", "15900001111"],
    "amount": ["299", "1280", "50块", "¥88", "3999元", "两百块", "六千多", "120块钱", "5k"],
    "phone_model": [
        "启明X9",
        "启明 X9 Pro",
        "启明Note 12",
        "Note12 Pro",
        "启明Pad 5",
        "启明Watch S2",
        "Buds 3",
        "X8",
        "启明 Mate 7",
        "启明10",
        "X9Pro+",
        "启明Fold 2",
    ],
    "phone_part": [
        "屏幕",
        "电池",
        "充电口",
        "摄像头",
        "扬声器",
        "主板",
        "后盖",
        "指纹",
        "home键",
        "听筒",
        "信号",
        "wifi",
        "系统",
        "相机",
        "耳机",
        "充电器",
        "数据线",
    ],
    "phone_issue": [
        "发烫",
        "卡顿",
        "自动重启",
        "黑屏",
        "闪退",
        "充不进电",
        "掉电快",
        "绿屏",
        "没信号",
        "死机",
        "烧屏",
        "进水",
        "花屏",
        "断触",
        "耗电特别快",
        "拍照模糊",
        "开不了机",
        "录音有杂音",
    ],
    "drink": [
        "生椰拿铁",
        "燕麦拿铁",
        "冰美式",
        "美式",
        "厚乳拿铁",
        "桂花拿铁",
        "抹茶拿铁",
        "焦糖玛奇朵",
        "澳白",
        "冷萃",
        "摩卡",
        "橙C美式",
        "酱香拿铁",
        "卡布奇诺",
    ],
    "food": ["三明治", "可颂", "贝果", "蛋糕", "肉松面包", "鸡肉卷", "提拉米苏", "曲奇", "饭团"],
    "coffee_issue": [
        "是凉的",
        "太甜了",
        "洒了一半",
        "有头发",
        "少了一杯",
        "做错了",
        "冰全化了",
        "里面有异物",
        "味道酸了",
        "过期了",
        "包装破了",
        "等了四十分钟",
    ],
    "store": [
        "人民广场店",
        "国贸店",
        "春熙路店",
        "西湖银泰店",
        "南京西路店",
        "机场店",
        "公司楼下那家店",
        "火车站店",
        "万达店",
    ],
    "lost_obj": [
        "黑色双肩包",
        "钱包",
        "身份证",
        "手机",
        "充电宝",
        "外套",
        "护照",
        "iPad",
        "笔记本电脑",
        "耳机",
        "钥匙",
        "眼镜",
        "围巾",
        "保温杯",
        "雨伞",
        "一个纸袋",
        "工牌",
        "Kindle",
        "相机",
        "儿童水壶",
        "蓝色行李箱",
        "手表",
        "银行卡",
    ],
    "staff_air": [
        "空姐",
        "空乘",
        "乘务员",
        "地勤",
        "值机柜台的工作人员",
        "机长",
        "登机口工作人员",
        "客服",
        "安检旁边的工作人员",
    ],
    "staff_phone": ["客服", "售后", "门店店员", "维修师傅", "导购", "快递小哥", "在线客服"],
    "staff_coffee": ["店员", "咖啡师", "小哥哥", "店长", "外卖小哥", "收银员", "客服"],
    "neg_emo": [
        "[怒]",
        "[抓狂]",
        "[泪]",
        "[衰]",
        "[哼]",
        "[鄙视]",
        "[怒骂]",
        "[生病]",
        "[晕]",
        "[弱]",
        "[吐]",
        "[汗]",
        "😡",
        "😤",
        "[失望]",
        "[伤心]",
        "[允悲]",
        "[裂开]",
    ],
    "pos_emo": [
        "[赞]",
        "[心]",
        "[爱你]",
        "[哈哈]",
        "[鼓掌]",
        "[good]",
        "[太开心]",
        "[嘻嘻]",
        "[给力]",
        "👍",
        "❤️",
        "[亲亲]",
        "[威武]",
        "[耶]",
        "[笑cry]",
    ],
    "neu_emo": ["[疑问]", "[思考]", "[doge]", "[吃瓜]", "[允悲]", "🤔", "[微笑]", "[二哈]", "[喵喵]"],
    "urgent": [
        "急！",
        "急急急",
        "在线等，急",
        "很着急",
        "麻烦尽快",
        "求快点回复",
        "！！！",
        "救命",
        "着急用",
        "马上就要用",
        "求帮忙",
        "拜托了",
    ],
    "spam_link": [
        "http://t.cn/A6x8Yz",
        "t.cn/Rk2a9",
        "www.xxfl88.com",
        "dwz.cn/8ab2",
        "http://url.cn/5Ke",
        "点我主页链接",
    ],
    "spam_contact": [
        "加V：xs8899",
        "加微信 abc12345",
        "V信 fuli666",
        "加q 123456789",
        "vx：lj6688",
        "➕微 kk2020",
        "wx: dd9527",
        "私信我",
        "看我头像",
        "主页有联系方式",
    ],
}

TYPO = [
    ("的", "滴"),
    ("什么", "神马"),
    ("怎么", "咋"),
    ("这样", "酱紫"),
    ("没有", "木有"),
    ("喜欢", "稀饭"),
    ("非常", "灰常"),
    ("是不是", "是布是"),
    ("你们", "你门"),
    ("谢谢", "3q"),
    ("谢谢", "xx"),
    ("好的", "ok"),
    ("客服", "kf"),
    ("不要", "表"),
    ("为什么", "为啥"),
    ("已经", "以经"),
    ("一下", "一哈"),
    ("还是", "海是"),
    ("真的", "真滴"),
    ("知道", "造"),
]

# --------------------------------------------------------------------------------------------
# Templates: {slot} names refer to V (or to "brand"). Each intent has airline, phone, coffee
# and generic templates.

T: dict[str, list[str]] = {
    "complaint": [
        # airline
        "{flight}延误了{n}个小时，一个通知都没有，{brand}你们就是这么对待乘客的？",
        "{date}坐{brand}{flight}，{staff_air}态度极差，全程黑脸，我要投诉",
        "{brand}延误不给任何解释，{airport}干等到{time}，这服务太烂了",
        "行李托运回来箱子摔坏了轮子都掉了，找柜台还互相推诿，{brand}必须给个说法",
        "航班取消只发了条短信，改签还要排两小时队，再也不坐{brand}了",
        "超售把我拉下飞机，赔偿就给{amount}，打发叫花子呢",
        "飞机餐难吃到吐，座椅还坏的调不了，{flight}这趟体验极差",
        "{brand}客服电话打了{n}次都没人接，投诉无门",
        "值机时被强行收了{amount}超重费，明明没超，乱收费！",
        "会员里程莫名其妙被清零，问客服一问三不知，垃圾",
        "空调坏了整个机舱闷得要死，{staff_air}说没办法，这就是你们的服务？",
        "登机口临时变更没广播，害我差点误机，{brand}管理太混乱了",
        # phone
        "买的{phone_model}才{n}天就{phone_issue}，质量也太差了吧",
        "{brand}的{phone_model}{phone_part}{phone_issue}，{staff_phone}还说是我人为损坏，气死了",
        "更新系统后{phone_model}变得巨卡，你们就是逼人换新机吧",
        "花{amount}买的{phone_model}，{phone_part}{phone_issue}，这品控真的无语",
        "{staff_phone}态度太差了，问两句就不耐烦，这就是{brand}的服务？",
        "宣传说{n}小时续航，实际半天就没电，虚假宣传，要去12315投诉",
        "新机到手屏幕就有坏点，{brand}品控堪忧",
        "维修拖了{n}周还没修好，每次问都说在处理，敷衍",
        "{phone_model}发热严重到烫手，玩会游戏就降频，垃圾手机",
        # coffee
        "在{store}买的{drink}{coffee_issue}，太让人失望了",
        "外卖等了一个多小时，送到的{drink}{coffee_issue}，差评",
        "{store}的{staff_coffee}态度好差，叫了三遍都不理人",
        "点的{food}{coffee_issue}，吃完肚子疼，你们的食品安全呢？",
        "{brand}的会员券说好能用结果结账时不让用，骗人",
        "{drink}越来越难喝了，价格还涨了，{brand}你们飘了",
        "{store}排队半小时，{staff_coffee}还给我做错了单，气",
        "扣了我{amount}但订单显示失败，钱也不退，什么鬼",
        # generic
        "{brand}你们能不能管管，这已经是第{n}次了！",
        "太失望了，再也不会买{brand}的东西了",
        "差评差评差评！服务烂到家了",
        "我要投诉你们的{staff_coffee}，态度恶劣",
        "一点诚意都没有，就会说抱歉，解决问题啊！",
        "已经打了12315了，{brand}等着吧",
        "说好的{n}天内处理，现在过去半个月了，还有人管吗",
        "被你们坑惨了，{brand}就是个骗子公司",
    ],
    "inquiry": [
        "请问{flight}{date}能准点起飞吗？",
        "你好，{brand}经济舱托运行李额度是多少公斤呀",
        "想问下{city}飞{city2}的航班可以带充电宝吗，多大容量的可以",
        "请问网上值机几点开放？可以选{seat}这种靠窗的座位吗",
        "{flight}在{airport}哪个航站楼登机呀",
        "儿童票怎么买，{n}岁的小孩要带户口本吗",
        "请问改签要手续费吗？机票是{date}的",
        "会员积分多久过期？可以兑换机票吗",
        "宠物可以托运吗？需要准备什么材料",
        "{city}到{city2}每天有几班，最早一班几点",
        "请问航班延误了怎么申请延误证明",
        "无陪儿童服务怎么申请？",
        # phone
        "请问{phone_model}支持无线充电吗",
        "{phone_model}和{phone_model2}有什么区别，哪个拍照好一点",
        "{phone_model}的{phone_part}在哪里设置呀，找不到",
        "请问{brand}的官方售后网点在{city}哪里？",
        "{phone_model}能升级到最新系统吗？什么时候推送",
        "怎么把旧手机的数据迁移到{phone_model}上",
        "请问{phone_model}是双卡双待吗，支持5G吗",
        "{phone_model}的保修期是多久呀",
        "请问{brand}官网的以旧换新怎么估价",
        "NFC怎么开通公交卡？",
        # coffee
        "请问{store}几点开门，周末营业吗",
        "{drink}可以换燕麦奶吗？要加钱吗",
        "会员积分怎么兑换{drink}呀",
        "请问{brand}的优惠券可以叠加使用吗",
        "{store}有没有插座可以办公",
        "{drink}是什么味道的？甜不甜",
        "请问{brand}外卖配送范围多大，能送到{city}吗",
        "新品{drink}什么时候上架啊",
        "咖啡豆可以帮忙磨吗？",
        "请问{food}含坚果吗，过敏体质能吃吗",
        # generic
        "请问怎么联系人工客服？",
        "你们的客服电话是多少",
        "{brand}在{city}有门店吗",
        "发票怎么开，可以开专票吗",
        "请问这个活动截止到什么时候",
        "在吗？想咨询一个问题",
        "怎么注册会员，有什么权益",
    ],
    "lost_item": [
        "{date}{flight}{city}飞{city2}，{lost_obj}落在{seat}座位上了，{urgent}",
        "{brand}你好，我{date}乘坐{flight}，下飞机时把{lost_obj}忘在座位上了，请帮忙找一下",
        "{lost_obj}好像丢在{airport}安检口了，有人捡到吗",
        "下机时{lost_obj}遗落在行李架上，{flight}，座位{seat}，联系电话{phone}",
        "在{airport}值机柜台附近丢了一个{lost_obj}，有失物招领吗",
        "我的{lost_obj}在飞机上丢了，{flight} {date}，求帮忙找找",
        "请问{flight}航班上有没有捡到一个{lost_obj}？座位{seat}",
        "{lost_obj}落在摆渡车上了，{date}{time}那趟，{urgent}",
        "行李到了但是里面的{lost_obj}不见了",
        "丢了{lost_obj}，里面有证件，{date}坐的{brand}，{urgent}",
        # phone store / coffee
        "{date}在{store}把{lost_obj}落在桌子上了，{staff_coffee}有看到吗",
        "我的{lost_obj}忘在{brand}{store}了，靠窗那桌，{urgent}",
        "在你们{city}门店体验区落下了一个{lost_obj}，能帮我收一下吗",
        "{time}在{store}点单的时候把{lost_obj}放柜台忘拿了",
        "去{brand}售后修手机的时候把{lost_obj}落那了",
        "{lost_obj}丢在{store}的洗手间了，有人交给店员吗",
        "昨天在{brand}体验店试机，{lost_obj}好像落在展台上了",
        # generic
        "丢东西了！{lost_obj}找不到了，最后一次是在你们店里",
        "求助！{lost_obj}丢了，可能落在你们那里",
        "有没有人捡到一个{lost_obj}，{date}丢的",
        "失物招领在哪里问？我的{lost_obj}不见了",
        "{lost_obj}忘拿了，能帮我保管一下吗，明天去取",
    ],
    "after_sales": [
        # airline
        "机票退了{n}天了退款还没到账，订单号{order}，麻烦查一下",
        "申请的延误补偿什么时候到账？订单{order}",
        "托运的行李破损了，怎么申请理赔",
        "{flight}行李延误没到，怎么登记，什么时候能送到家",
        "报销需要行程单，怎么补开电子发票",
        "退票手续费扣太多了，能帮忙核实一下吗，订单号{order}",
        "积分没有累积到账户里，{date}的{flight}，帮我补录一下",
        "行李箱轮子摔坏了，要怎么申请赔偿",
        # phone
        "{phone_model}{phone_part}{phone_issue}，还在保修期内，怎么申请维修",
        "收到的{phone_model}有划痕，可以换货吗，订单号{order}",
        "7天无理由退货怎么操作？{phone_model}还没拆封",
        "{phone_model}送修一周了，能查一下维修进度吗",
        "换{phone_part}大概多少钱？过保了",
        "寄修的{phone_model}什么时候寄回来，单号{order}",
        "申请了退款，钱什么时候退回来",
        "{phone_model}碎屏险怎么用，屏幕摔裂了",
        "买的{phone_model}能开发票吗，下单时忘记选了",
        "充电器坏了可以单独换吗，手机买了{n}个月",
        "订单{order}显示已签收但是我没收到货",
        "{phone_model}{phone_issue}，需要返厂吗",
        # coffee
        "外卖少送了一杯{drink}，订单号{order}，麻烦补一下",
        "储值卡里的余额能退吗",
        "会员卡充值了{amount}没到账，帮忙看下",
        "团购的券过期了没用，可以退款吗",
        "小程序下单重复扣款了，订单{order}，请退一笔",
        "买的咖啡豆收到时包装漏了，能换一包吗",
        "{drink}送错了，我点的是{drink2}，可以退吗",
        # generic
        "怎么申请退款？",
        "退货地址是哪里，快递费谁出",
        "发票开错了抬头，能重开吗",
        "商品坏了，还在保修期，怎么处理",
        "快递{n}天了还没发货，订单号{order}",
        "物流一直不更新，帮忙催一下，单号{order}",
    ],
    "praise": [
        "{date}坐{brand}{flight}，{staff_air}特别温柔，还帮我放行李，点赞{pos_emo}",
        "{brand}准点率越来越高了，这次提前到达{pos_emo}",
        "谢谢{brand}的{staff_air}帮我找回了{lost_obj}，太感动了",
        "飞机餐居然这么好吃，{brand}良心航司{pos_emo}",
        "第一次坐{brand}，服务真的没得说，下次还选你们",
        "感谢{airport}地勤小哥哥，航班延误还一直耐心安抚大家",
        "升舱了开心{pos_emo}，{brand}爱了爱了",
        # phone
        "{phone_model}拍照真的绝了，夜景太清楚了{pos_emo}",
        "用了{n}年的{brand}，一直很流畅，忠实粉丝",
        "{brand}售后效率好高，{phone_part}一天就修好了，给{staff_phone}点赞",
        "{phone_model}续航太顶了，重度使用一天还剩{n}0%",
        "新买的{phone_model}手感超好，颜值在线{pos_emo}",
        "系统更新后变流畅了，{brand}yyds",
        # coffee
        "{store}的{staff_coffee}太可爱了，还给我画了爱心拉花{pos_emo}",
        "{drink}永远的神，每天一杯续命{pos_emo}",
        "{brand}新品{drink}好好喝！强烈推荐",
        "下雨天外卖小哥准时送到还没洒，给{brand}点赞",
        "{store}环境好安静，适合办公，咖啡也好喝",
        # generic
        "服务太棒了，必须表扬一下{pos_emo}",
        "谢谢客服小姐姐耐心解答，问题解决了{pos_emo}",
        "良心品牌，支持{brand}！",
        "体验很好，五星好评{pos_emo}",
        "感动，你们的服务真的很用心",
        "{brand}越来越好了，继续加油",
    ],
    "purchase_intent": [
        "想订{date}{city}飞{city2}的机票，有优惠吗",
        "{brand}的会员日什么时候，想囤几张机票",
        "{city}到{city2}的往返票现在多少钱？准备订",
        "想给爸妈买两张{date}的机票，怎么买比较便宜",
        "有没有学生特价票？暑假想去{city2}",
        "想升级头等舱要加多少钱",
        "准备买{brand}的随心飞，值得入手吗",
        # phone
        "{phone_model}什么时候开售？想第一时间入手",
        "想买{phone_model}，现在下单有赠品吗",
        "{phone_model}哪里能买到现货，官网一直缺货",
        "准备换机了，{phone_model}有分期免息吗",
        "{phone_model}有没有学生优惠，想入手",
        "求{phone_model}的购买链接",
        "{city}哪个门店能买到{phone_model}，想今天去提",
        "预约了{phone_model}，怎么还没通知购买",
        "想给我妈买个{brand}手机，有什么推荐吗，预算{amount}",
        # coffee
        "想订{n}0杯{drink}送到公司，可以团购吗",
        "{brand}的咖啡豆在哪买，想买一包回家",
        "请问月卡怎么买，想办一张",
        "{drink}外卖能点吗，想下单",
        "生日想订个{food}，可以提前预订吗",
        "想买{brand}的联名杯子，还有货吗",
        # generic
        "怎么下单？想买",
        "有链接吗，想买",
        "{brand}双十一有活动吗，准备囤货",
        "心动了，想入一个{pos_emo}",
        "可以加购吗，想多买几个送人",
        "想买，在哪里买",
    ],
    "spam": [
        "兼职刷单，日赚{n}00，{spam_contact}",
        "{spam_contact}，低价出各种会员，{spam_link}",
        "互粉互赞，有关必回，{spam_contact}",
        "点击{spam_link}领取{amount}现金红包，限时",
        "专业代购正品{phone_model}，比官网便宜{amount}，{spam_contact}",
        "贷款秒批，无需征信，{spam_contact}",
        "机票特价{n}折，出票快，{spam_contact}",
        "澳门线上娱乐城，注册送{amount}，{spam_link}",
        "加盟{brand}奶茶咖啡，零经验月入{n}万，{spam_contact}",
        "出售高仿{phone_model}，一比一复刻，{spam_contact}",
        "想赚钱的来{spam_contact}，宝妈学生都可以",
        "粉丝{n}万低价出，{spam_contact}",
        "免费领{brand}优惠券，{spam_link}",
        "刷粉刷赞刷转发，{spam_contact}",
        "{spam_link} 点开有惊喜",
        "专业删差评，{spam_contact}",
        "手机回收高价，{spam_contact}",
        "转发此条抽{n}人送{phone_model}，关注我，{spam_link}",
        "招代理，一件代发，{spam_contact}",
        "减肥瘦身，一个月瘦{n}斤，{spam_contact}",
        "低价办理信用卡，{spam_contact}",
        "{spam_contact}{spam_contact2}，看我主页",
        "学历提升，包过，{spam_contact}",
        "彩票内部消息，稳赚不赔，{spam_link}",
    ],
    "other": [
        "{brand}早上好呀{neu_emo}",
        "今天天气真好，适合出去玩",
        "第一次坐飞机有点紧张{neu_emo}",
        "哈哈哈哈哈哈{neu_emo}",
        "转发微博",
        "打卡{date}",
        "{city}今天好热啊",
        "这个广告拍得挺有意思{neu_emo}",
        "有人一起去{city2}玩吗",
        "周末快乐{neu_emo}",
        "路过，看看",
        "吃瓜{neu_emo}",
        "@{friend} 你看这个",
        "{brand}的小编好有才",
        "抽奖抽奖，希望中一次{neu_emo}",
        "终于放假了",
        "我就看看不说话",
        "前排{neu_emo}",
        "{city}的朋友们晚上好",
        "刚看了一部电影，挺好看的",
        "这个月又要还花呗了{neu_emo}",
        "今天加班到{time}，累",
        "明天要考试了保佑我",
        "好久没发微博了",
        "沙发",
        "跟{brand}没关系，就是想说今天心情不错",
        "好想去旅游啊{neu_emo}",
        "{brand}的logo换了吗",
        "来了来了",
        "关注了",
        "晚安{neu_emo}",
        "这条微博是昨天发的吗",
        "{city2}下雪了",
        "猫咪好可爱",
    ],
}

# a few fragments that turn a core message into fan-style text
OPENERS = [
    "",
    "",
    "",
    "",
    "@{brand} ",
    "@{brand} ",
    "@{brand}",
    "#{brand}# ",
    "{brand} ",
    "你好，",
    "您好 ",
    "在吗？",
    "hello ",
    "客服你好，",
    "小编，",
    "亲，",
    "回复@{brand}:",
    "[{brand}] ",
]
CLOSERS = [
    "",
    "",
    "",
    "",
    "。",
    "！",
    "!!",
    "？",
    "...",
    "。。。",
    " {emo}",
    "{emo}{emo}",
    " thx",
    " 谢谢",
    " 谢谢！",
    "，谢谢",
    " pls",
    " 在线等",
    "~",
    " 麻烦了",
]
FRIENDS = ["小明同学", "吃货阿花", "Lily_520", "大鹏不是鹏", "橙子味的猫", "王小二"]


def _fill(template: str, rng: random.Random, domain: str) -> str:
    def repl(m: re.Match[str]) -> str:
        key = m.group(1)
        base = key.rstrip("2")
        if base == "brand":
            pool = BRANDS[domain] if domain in BRANDS else BRANDS["generic"]
            if rng.random() < 0.12:
                pool = OTHER_BRANDS
            return rng.choice(pool)
        if base == "n":
            return str(rng.choice([2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 30]))
        if base == "friend":
            return rng.choice(FRIENDS)
        if base == "emo":
            return rng.choice(V[rng.choice(["neg_emo", "pos_emo", "neu_emo"])])
        if base in V:
            return rng.choice(V[base])
        return m.group(0)

    return re.sub(r"\{(\w+)\}", repl, template)


def _domain_of(template: str) -> str:
    if any(
        k in template
        for k in (
            "flight",
            "airport",
            "staff_air",
            "seat",
            "机票",
            "航班",
            "飞",
            "登机",
            "行李",
            "航司",
            "值机",
            "里程",
            "升舱",
        )
    ):
        return "air"
    if any(k in template for k in ("phone_", "手机", "系统", "NFC", "充电")):
        return "phone"
    if any(k in template for k in ("drink", "food", "store", "coffee", "咖啡", "外卖", "staff_coffee")):
        return "coffee"
    return rng_domain_default


rng_domain_default = "generic"


def _noise(text: str, rng: random.Random) -> str:
    if rng.random() < 0.25:
        a, b = rng.choice(TYPO)
        text = text.replace(a, b, 1)
    if rng.random() < 0.15:
        text = text.replace("，", " ").replace("。", " ")
    if rng.random() < 0.1:
        text = text.replace("，", ",").replace("？", "?").replace("！", "!")
    if rng.random() < 0.05:
        text = text.replace("吗", "嘛")
    return text.strip()


def render(template: str, rng: random.Random, intent: str) -> str:
    domain = _domain_of(template)
    if domain == "generic" and rng.random() < 0.8:
        domain = rng.choice(["air", "phone", "coffee"])
    core = _fill(template, rng, domain)
    opener = _fill(rng.choice(OPENERS), rng, domain)
    closer = rng.choice(CLOSERS)
    if "{emo}" in closer:
        pool = {"complaint": "neg_emo", "praise": "pos_emo", "lost_item": "neg_emo"}.get(intent, "neu_emo")
        closer = closer.replace("{emo}", rng.choice(V[pool]), 1).replace("{emo}", rng.choice(V[pool]))
    if intent == "spam" and opener.startswith(("你好", "您好", "客服", "亲")):
        opener = ""
    text = _noise(opener + core + closer, rng)
    if intent in ("complaint", "lost_item") and rng.random() < 0.3:
        text += rng.choice(V["neg_emo"])
    return text


def generate(n_per_intent: int = 700, seed: int = 20240501) -> list[tuple[str, str]]:
    """Deterministic list of (text, intent)."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for intent in INTENTS:
        templates = T[intent]
        made = 0
        tries = 0
        while made < n_per_intent and tries < n_per_intent * 5:
            tries += 1
            text = render(rng.choice(templates), rng, intent)
            if text in seen:
                continue
            seen.add(text)
            out.append((text, intent))
            made += 1
    return out


def load_jsonl(name: str) -> list[tuple[str, str]]:
    path = DATA_DIR / name
    if not path.exists():
        return []
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                obj = json.loads(line)
                rows.append((str(obj["text"]), str(obj["label"])))
    return rows


def handwritten_train() -> list[tuple[str, str]]:
    return load_jsonl("intent_handwritten.jsonl")


def handwritten_dev() -> list[tuple[str, str]]:
    return load_jsonl("intent_dev.jsonl")


if __name__ == "__main__":  # pragma: no cover
    for t, y in random.Random(1).sample(generate(), 40):
        print(y, t, sep="\t")
